"""Fakes of the targets crmhub's connectors write to, shipped with the package as test doubles
(as httpx ships MockTransport): one fake per connector, named after it (``http``, ``hubspot``),
each a plain application object (``app.FakeApp``) that runs

* over HTTP, as its own process: ``python -m connectors.fakes.hubspot --port 8901`` (what
  ``crmhub serve --demo``, the integration tests and the benchmarks run), or
* in-process, behind an httpx transport: ``FakeTransport(FakeHubSpot(...))`` (unit tests).

Shared plumbing: ``app`` (requests, answers, the ``/_control`` API), ``faults`` and ``state``
(injected faults, the request log), ``server`` (HTTP and the command line), ``transport``.
"""

#: the module ``python -m`` runs for each connector's fake
FAKE_MODULES = {
    "dynamics": "connectors.fakes.dynamics",
    "http": "connectors.fakes.http",
    "hubspot": "connectors.fakes.hubspot",
    "salesforce": "connectors.fakes.salesforce",
    "zoho": "connectors.fakes.zoho",
    "pipedrive": "connectors.fakes.pipedrive",
    "quickbooks": "connectors.fakes.quickbooks",
}
