"""Salesforce drain: a backlog of N events delivered to the fake Salesforce, batching on and
off, Contacts alone and Contacts with their Accounts.

What is measured
    N (`--events`, 10,000) Stripe-shaped `customer.created` events, each its own person
    (distinct email: distinct record key and Contact), working at one of `--companies` (500)
    companies, are recorded while no worker runs; then the hub's Celery worker (prefork,
    CRMHUB_WORKER_CONCURRENCY, default 2, the Procfile's command) drains them into the fake
    Salesforce (connectors/fakes/salesforce/) through connectors/salesforce.py. Four modes in
    one invocation:

    contacts, batching on      SOQL lookups `IN (...)` and sObject Collections, up to 200
                               records per request (the worker claims a delivery and up to
                               199 waiting deliveries of the connection and object)
    contacts, batching off     `options: {batch_size: 1}`: a lookup and a write per record
    + accounts, batching on    the mapping also has `related: AccountId` (find or create the
                               person's company's Account first, then link)
    + accounts, batching off

    Per mode: events/s = N / (first claim -> last delivered), both from the ledger; Salesforce
    API calls per event = the fake's `api_calls` (token requests excluded) / N. Targets
    (issue 13): at most 0.05 calls per event for Contacts, 0.1 with their Accounts. The
    batching-off run of the same mode is the baseline the ratio is taken against (same run,
    same machine).

Method
    The backlog is recorded through the hub's own intake and ledger code (app.runtime.build_hub,
    core.intake.build_events, Ledger.accept in chunks of 200), as bench/hubspot.py does. The
    fake runs with `--daily-limit 0` (no REQUEST_LIMIT_EXCEEDED). Each mode gets a fresh key
    prefix and a reset fake. A run is valid when every event was delivered, the fake holds N
    Contacts (and the expected Accounts), saw no request Salesforce would refuse, and there is
    no dead letter; otherwise exit status 1 (2: could not set up; 130: interrupted).

`--json` prints one object: `crm`, `events`, `api_calls`, `calls_per_event` and
`events_per_second` of the headline mode (contacts, batching on), every mode under `results`.
The harness is bench/crm_drain.py, shared with Zoho's and Dynamics' benches.
Run it from the repository root: `.venv/bin/python bench/salesforce.py [--events N] [--json]`.
"""

from __future__ import annotations

import sys

from crm_drain import BatchingCrm, batching_main

SALESFORCE = BatchingCrm(
    slug="salesforce",
    title="Salesforce",
    fake_args=(
        "--daily-limit",
        "0",
        "--client-id",
        "bench-client",
        "--client-secret",
        "bench-secret",
        "--refresh-token",
        "unused",
    ),
    credentials={"SF_CLIENT_ID": "bench-client", "SF_CLIENT_SECRET": "bench-secret"},
    refresh_token_env="SF_REFRESH_TOKEN",
    hub_config="""\
# written by bench/salesforce.py: Stripe-shaped customers -> Salesforce Contacts
sources:
  stripe:
    verify: {{scheme: stripe, secret_env: CRMHUB_BENCH_STRIPE_SECRET}}
    event_id: id
    event_type: type
    occurred_at: created
connections:
  {connection}:
    connector: salesforce
    login_url: {url}
    auth: {{type: oauth2, client_id_env: SF_CLIENT_ID, client_secret_env: SF_CLIENT_SECRET,
            refresh_token_env: SF_REFRESH_TOKEN}}
    options: {{batch_size: {batch_size}}}
mappings:
  customer-to-contact:
    source: stripe
    when: {{event_type: [customer.created]}}
    connection: {connection}
    object: Contact
    match: {{field: Email, from: data.object.email, normalize: email}}
    fields:
      FirstName: {{from: data.object.name, transform: [first_name]}}
      LastName: {{from: data.object.name, transform: [last_name], required: true}}
      Email: {{from: data.object.email, transform: [email]}}
      Title: {{from: data.object.metadata.title, owner: target}}
{related}""",
    related="""\
    related:
      AccountId: {object: Account, match: {field: Name, from: data.object.metadata.company,
                  normalize: strip}, fields: {Name: data.object.metadata.company}}
""",
    contacts="Contact",
    accounts="Account",
    batch_size=200,  # sObject Collections' most
    targets={"contacts": 0.05, "with accounts": 0.1},  # issue 13
)

if __name__ == "__main__":
    sys.exit(batching_main(SALESFORCE))
