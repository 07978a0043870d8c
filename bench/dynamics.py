"""Dynamics 365 drain: a backlog of N events delivered to the fake Dataverse, batching on and
off, contacts alone and contacts with their accounts.

What is measured
    N (`--events`, 10,000) Stripe-shaped `customer.created` events, each its own person
    (distinct email: distinct record key and contact), working at one of `--companies` (500)
    companies, are recorded while no worker runs; then the hub's Celery worker (prefork,
    CRMHUB_WORKER_CONCURRENCY, default 2, the Procfile's command) drains them into the fake
    Dataverse (connectors/fakes/dynamics/) through connectors/dynamics.py. Modes, in one
    invocation:

    contacts, batching on      `$batch` of up to `--batch-size` (100) change sets, one record
                               each (the worker claims a delivery and the waiting deliveries
                               of the connection and object to fill it)
    contacts, batching off     `options: {batch_size: 1}`: one upsert request per record
    + accounts, batching on    the mapping also has `related: parentcustomerid_account@odata.bind`
                               (find the person's company's account by its alternate key, or
                               create it, then bind the contact to it)

    Per mode: events/s = N / (first claim -> last delivered), both from the ledger; Dataverse
    API calls per event = the fake's `api_calls` (a $batch counts one; token requests
    excluded) / N. Targets (issue 15): at most 0.05 calls per event for contacts, 0.1 with
    their accounts. The batching-off run is the baseline the speed ratio is taken against
    (same run, same machine).

Method
    The backlog is recorded through the hub's own intake and ledger code (app.runtime.build_hub,
    core.intake.build_events, Ledger.accept in chunks of 200), as bench/salesforce.py does. Each
    mode gets a fresh key prefix and a reset fake. A run is valid when every event was
    delivered, the fake holds N contacts (and the expected accounts), saw no request Dataverse
    would refuse, and there is no dead letter; otherwise exit status 1 (2: could not set up;
    130: interrupted).

`--json` prints one object: `crm`, `events`, `api_calls`, `calls_per_event` and
`events_per_second` of the headline mode (contacts, batching on), every mode under `results`.
The harness is bench/crm_drain.py, shared with Salesforce's and Zoho's benches.
Run it from the repository root: `.venv/bin/python bench/dynamics.py [--events N] [--json]`.
"""

from __future__ import annotations

import sys

from crm_drain import BatchingCrm, batching_main

TENANT = "00000000-0000-0000-0000-0000000000aa"

DYNAMICS = BatchingCrm(
    slug="dynamics",
    title="Dynamics 365",
    fake_args=(
        "--tenant",
        TENANT,
        "--client-id",
        "bench-client",
        "--client-secret",
        "bench-secret",
    ),
    credentials={"DYNAMICS_CLIENT_ID": "bench-client", "DYNAMICS_CLIENT_SECRET": "bench-secret"},
    hub_config="""\
# written by bench/dynamics.py: Stripe-shaped customers -> Dynamics 365 contacts
sources:
  stripe:
    verify: {{scheme: stripe, secret_env: CRMHUB_BENCH_STRIPE_SECRET}}
    event_id: id
    event_type: type
    occurred_at: created
connections:
  {connection}:
    connector: dynamics
    base_url: {url}
    auth: {{type: client_credentials, token_url: "{url}/<tenant>/oauth2/v2.0/token",
            client_id_env: DYNAMICS_CLIENT_ID, client_secret_env: DYNAMICS_CLIENT_SECRET}}
    alternate_keys: {{contacts: [emailaddress1], accounts: [name]}}
    options: {{batch_size: {batch_size}}}
mappings:
  customer-to-contact:
    source: stripe
    when: {{event_type: [customer.created]}}
    connection: {connection}
    object: contacts
    match: {{field: emailaddress1, from: data.object.email, normalize: email}}
    fields:
      firstname: {{from: data.object.name, transform: [first_name]}}
      lastname: {{from: data.object.name, transform: [last_name], required: true}}
      emailaddress1: {{from: data.object.email, transform: [email]}}
      jobtitle: {{from: data.object.metadata.title, owner: target}}
{related}""".replace("<tenant>", TENANT),
    related="""\
    related:
      parentcustomerid_account@odata.bind: {object: accounts, match: {field: name,
          from: data.object.metadata.company, normalize: strip},
          fields: {name: data.object.metadata.company}}
""",
    contacts="contacts",
    accounts="accounts",
    batch_size=100,  # what the connector sends per $batch by default
    targets={"contacts": 0.05, "with accounts": 0.1},  # issue 15
    accounts_batching_off=False,
)

if __name__ == "__main__":
    sys.exit(batching_main(DYNAMICS))
