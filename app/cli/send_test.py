"""`crmhub send-test`: send a genuinely signed webhook to a running hub (demo, smoke test)."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import click
import httpx

from app.cli.common import CliContext, emit_json, fail, handles_hub_errors, json_option, pass_ctx
from core.signatures import SignatureError, get_scheme


def sample_stripe_customer(email: str, name: str) -> dict[str, Any]:
    """A Stripe `customer.created` event as Stripe sends it (the fields a mapping uses)."""
    now = int(time.time())
    return {
        "id": f"evt_{uuid.uuid4().hex[:24]}",
        "object": "event",
        "api_version": "2024-06-20",
        "created": now,
        "type": "customer.created",
        "livemode": False,
        "data": {
            "object": {
                "id": f"cus_{uuid.uuid4().hex[:14]}",
                "object": "customer",
                "email": email,
                "name": name,
                "phone": "+1 415 555 0100",
                "created": now,
                "metadata": {},
            }
        },
    }


@click.command("send-test")
@click.argument("source")
@click.argument(
    "payload", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option(
    "--email", default="ada@example.com", show_default=True, help="For the built-in Stripe sample."
)
@click.option("--name", default="Ada Lovelace", show_default=True)
@click.option("--url", help="The hub [http://CRMHUB_HOST:CRMHUB_PORT].")
@json_option
@pass_ctx
@handles_hub_errors
def send_test(
    ctx: CliContext,
    source: str,
    payload: Path | None,
    email: str,
    name: str,
    url: str | None,
    as_json: bool,
) -> None:
    """Sign PAYLOAD (or a sample Stripe customer.created) as SOURCE's sender would, and POST
    it to the hub's /webhooks/SOURCE."""
    config = ctx.config
    spec = config.sources.get(source)
    if spec is None:
        fail(f"no source named {source!r} (configured: {', '.join(sorted(config.sources))})", 4)
    if payload is not None:
        body = payload.read_bytes()
    elif spec.verify.scheme == "stripe":
        body = json.dumps(sample_stripe_customer(email, name)).encode()
    else:
        fail(
            f"give a PAYLOAD file: the built-in sample is a Stripe event and {source!r} uses "
            f"the {spec.verify.scheme} scheme",
            2,
        )
    secret = next(
        (ctx.settings.environ[v] for v in spec.secret_env if ctx.settings.environ.get(v)), ""
    )
    if spec.verify.scheme != "none" and not secret:
        fail(f"set {' or '.join(spec.secret_env)} (the source's signing secret) to sign", 2)
    base = url or f"http://{ctx.settings.host}:{ctx.settings.port}"
    target = spec.public_url or f"{base}/webhooks/{source}"
    try:
        headers = get_scheme(spec.verify.scheme).sign(
            body=body, secret=secret, options=spec.verify, now=time.time(), url=target
        )
    except SignatureError as exc:  # a secret of the wrong form for the scheme, say
        fail(
            f"cannot sign for {source!r} ({spec.verify.scheme}): {exc.detail}; check "
            f"{' or '.join(spec.secret_env)}",
            2,
        )
    try:
        response = httpx.post(
            f"{base}/webhooks/{source}",
            content=body,
            timeout=10,
            headers={"Content-Type": "application/json", **headers},
        )
    except httpx.TransportError as exc:
        fail(f"cannot reach the hub at {base}: {exc} (is `crmhub serve` running?)", 3)
    answer = (
        response.json()
        if response.headers.get("content-type", "").startswith("application/json")
        else response.text
    )
    if as_json:
        emit_json({"status": response.status_code, "answer": answer})
    else:
        click.echo(f"HTTP {response.status_code} {json.dumps(answer)}")
    if response.status_code >= 300:
        raise SystemExit(1)
