"""Zoho CRM drain: a backlog of N events delivered to the fake Zoho CRM, batching on and off,
Contacts alone and Contacts with their Accounts.

What is measured
    N (`--events`, 10,000) Stripe-shaped `customer.created` events, each its own person
    (distinct email: distinct record key and Contact), working at one of `--companies` (500)
    companies, are recorded while no worker runs; then the hub's Celery worker (prefork,
    CRMHUB_WORKER_CONCURRENCY, default 2, the Procfile's command) drains them into the fake
    Zoho CRM (connectors/fakes/zoho/) through connectors/zoho.py. Four modes in one
    invocation:

    contacts, batching on      `POST /crm/v8/Contacts/upsert` with up to 100 records per
                               request (the worker claims a delivery and up to 99 waiting
                               deliveries of the connection and object); no read first
    contacts, batching off     `options: {batch_size: 1}`: one upsert per record
    + accounts, batching on    the mapping also has `related: Account_Name` (find the
                               person's company's Account, one search per ten names, or
                               create it, then link)
    + accounts, batching off

    Per mode: events/s = N / (first claim -> last delivered), both from the ledger; Zoho API
    calls per event = the fake's `api_calls` (token requests excluded) / N. Target (issue 15):
    at most 0.02 calls per event for Contacts, batching on. The batching-off run of the same
    mode is the baseline the ratio is taken against (same run, same machine). `--json`
    prints the summary: `crm`, `events`, `api_calls`, `calls_per_event`,
    `events_per_second` (of the headline mode, contacts batching on), and every mode.

Method
    The backlog is recorded through the hub's own intake and ledger code (app.runtime.build_hub,
    core.intake.build_events, Ledger.accept in chunks of 200), as bench/hubspot.py does. The
    fake runs with unlimited API credits. Each mode gets a fresh key prefix and a reset fake.
    A run is valid when every event was delivered, the fake holds N Contacts (and the
    expected Accounts), saw no request Zoho would refuse, and there is no dead letter;
    otherwise exit status 1 (2: could not set up; 130: interrupted).

The harness is bench/crm_drain.py, shared with Salesforce's and Dynamics' benches.
Run it from the repository root: `.venv/bin/python bench/zoho.py [--events N] [--json]`.
"""

from __future__ import annotations

import sys

from crm_drain import BatchingCrm, batching_main

ZOHO = BatchingCrm(
    slug="zoho",
    title="Zoho CRM",
    fake_args=(
        "--credits",
        "0",
        "--client-id",
        "1000.BENCHCLIENT",
        "--client-secret",
        "bench-secret",
        "--refresh-token",
        "unused",
    ),
    credentials={"ZOHO_CLIENT_ID": "1000.BENCHCLIENT", "ZOHO_CLIENT_SECRET": "bench-secret"},
    refresh_token_env="ZOHO_REFRESH_TOKEN",
    refresh_token_prefix="1000.bench-refresh-",
    hub_config="""\
# written by bench/zoho.py: Stripe-shaped customers -> Zoho CRM Contacts
sources:
  stripe:
    verify: {{scheme: stripe, secret_env: CRMHUB_BENCH_STRIPE_SECRET}}
    event_id: id
    event_type: type
    occurred_at: created
connections:
  {connection}:
    connector: zoho
    accounts_url: {url}
    auth: {{type: oauth2, client_id_env: ZOHO_CLIENT_ID, client_secret_env: ZOHO_CLIENT_SECRET,
            refresh_token_env: ZOHO_REFRESH_TOKEN}}
    options: {{batch_size: {batch_size}}}
mappings:
  customer-to-contact:
    source: stripe
    when: {{event_type: [customer.created]}}
    connection: {connection}
    object: Contacts
    match: {{field: Email, from: data.object.email, normalize: email}}
    fields:
      First_Name: {{from: data.object.name, transform: [first_name]}}
      Last_Name: {{from: data.object.name, transform: [last_name], required: true}}
      Email: {{from: data.object.email, transform: [email]}}
      Title: data.object.metadata.title
{related}""",
    related="""\
    related:
      Account_Name: {object: Accounts, match: {field: Account_Name,
                     from: data.object.metadata.company, normalize: strip},
                     fields: {Account_Name: data.object.metadata.company}}
""",
    contacts="Contacts",
    accounts="Accounts",
    batch_size=100,  # upsert's most records per request
    targets={"contacts": 0.02},  # issue 15
)

if __name__ == "__main__":
    sys.exit(batching_main(ZOHO))
