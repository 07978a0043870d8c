"""RabbitMQ for the tests that run the hub on it: a vhost of the test's own on the local
broker (127.0.0.1:5672, guest/guest, as on CI's machine), made with rabbitmqctl and deleted
after. Without a broker that answers, those tests skip saying so (and fail on CI, where
RabbitMQ runs: `CI` set)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import uuid
from collections.abc import Iterator

import pytest

HOST, PORT = "127.0.0.1", 5672
RABBITMQCTL = shutil.which("rabbitmqctl") or "/usr/sbin/rabbitmqctl"


def rabbitmq_answers() -> bool:
    try:
        with socket.create_connection((HOST, PORT), timeout=1):
            return True
    except OSError:
        return False


def _ctl(*args: str) -> None:
    subprocess.run([RABBITMQCTL, *args], check=True, capture_output=True, timeout=60)


@pytest.fixture
def rabbitmq_url() -> Iterator[str]:
    """An AMQP URL on a fresh vhost (guest may use it), deleted with everything in it after."""
    if not rabbitmq_answers() or not os.path.exists(RABBITMQCTL):
        reason = f"RabbitMQ does not answer on {HOST}:{PORT} (or no rabbitmqctl)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}, and CI has it")
        pytest.skip(reason)
    vhost = f"crmhub-test-{uuid.uuid4().hex[:12]}"
    _ctl("add_vhost", vhost)
    try:
        _ctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        yield f"amqp://guest:guest@{HOST}:{PORT}/{vhost}"
    finally:
        _ctl("delete_vhost", vhost)
