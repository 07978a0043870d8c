"""The deployment examples say what the code does: docker-compose.yml (with its RabbitMQ
profile and scaled workers) and deploy/kubernetes.yaml parse, carry the fields their tools
require, run the Procfile's processes, probe routes the app has, hold to the one-beat rule
and set only CRMHUB_ settings the README documents."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import fakeredis
import pytest
import yaml

from app import create_app
from connectors.registry import CONNECTORS
from core.config import load_config
from core.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
MANIFESTS = [d for d in yaml.safe_load_all((ROOT / "deploy" / "kubernetes.yaml").read_text()) if d]
README = (ROOT / "README.md").read_text()
#: every CRMHUB_ setting the README's configuration reference names (in backticks)
DOCUMENTED = set(re.findall(r"`(CRMHUB_[A-Z0-9_]+)`", README))


def procfile() -> dict[str, list[str]]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return {
        name.strip(): shlex.split(command)
        for name, _, command in (line.partition(":") for line in lines)
        if command and not name.startswith("#")
    }


def program(argv: list[str]) -> tuple[str, ...]:
    """What a command runs: gunicorn and its app, or celery and its subcommand."""
    if argv[0] == "gunicorn":
        return ("gunicorn", argv[-1])
    return ("celery", argv[argv.index("-A") + 1], argv[argv.index("-A") + 2])


def by_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in MANIFESTS if d["kind"] == kind}


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    (only,) = deployment["spec"]["template"]["spec"]["containers"]
    return dict(only)


# docker compose -------------------------------------------------------------------------
def test_compose_runs_each_procfile_process_as_a_service_of_its_name() -> None:
    services = COMPOSE["services"]
    for name, argv in procfile().items():
        assert name in services, f"the Procfile's {name} has no compose service"
        assert program(services[name]["command"]) == program(argv), name


def test_compose_workers_consume_the_hubs_queues_with_a_node_name_per_container() -> None:
    worker = COMPOSE["services"]["worker"]["command"]
    queues = worker[worker.index("--queues") + 1]
    assert queues == "crmhub.deliveries,crmhub.control"  # CRMHUB_KEY_PREFIX's default
    assert worker[worker.index("--hostname") + 1].endswith("@%h")
    assert COMPOSE["services"]["worker"]["deploy"]["replicas"] >= 2  # the scaled example


def test_compose_has_exactly_one_beat_and_a_rabbitmq_profile() -> None:
    services = COMPOSE["services"]
    assert services["beat"]["deploy"]["replicas"] == 1
    assert services["rabbitmq"]["profiles"] == ["rabbitmq"]
    assert services["rabbitmq"]["image"].startswith("rabbitmq:")
    # the hub's services take the broker from the environment (the profile's instructions)
    assert "CRMHUB_BROKER_URL" in services["web"]["environment"]
    assert "--profile rabbitmq" in (ROOT / "docker-compose.yml").read_text()


def test_compose_sets_only_documented_settings() -> None:
    names = {
        name
        for service in COMPOSE["services"].values()
        for name in (service.get("environment") or {})
        if name.startswith("CRMHUB_")
    }
    assert names and names <= DOCUMENTED, names - DOCUMENTED


# kubernetes -----------------------------------------------------------------------------
def test_every_manifest_has_the_fields_kubernetes_requires() -> None:
    assert {d["kind"] for d in MANIFESTS} == {"ConfigMap", "Secret", "Deployment", "Service"}
    for doc in MANIFESTS:
        assert doc["apiVersion"] and doc["metadata"]["name"], doc
    for name, deployment in by_kind("Deployment").items():
        spec = deployment["spec"]
        labels = spec["template"]["metadata"]["labels"]
        assert spec["selector"]["matchLabels"].items() <= labels.items(), name
        c = container(deployment)
        assert c["name"] and c["image"] and c["command"], name


def test_the_deployments_run_the_procfile_processes() -> None:
    deployments = by_kind("Deployment")
    for name, argv in procfile().items():
        assert program(container(deployments[f"crmhub-{name}"])["command"]) == program(argv)
    worker = container(deployments["crmhub-worker"])["command"]
    prefix = by_kind("ConfigMap")["crmhub-settings"]["data"]["CRMHUB_KEY_PREFIX"]
    assert worker[worker.index("--queues") + 1] == f"{prefix}.deliveries,{prefix}.control"


def test_the_receiver_is_probed_on_routes_the_app_has(tmp_path: Path) -> None:
    web = container(by_kind("Deployment")["crmhub-web"])
    ports = {p["name"] for p in web["ports"]}
    ready, live = web["readinessProbe"]["httpGet"], web["livenessProbe"]["httpGet"]
    assert (ready["path"], live["path"]) == ("/readyz", "/healthz")
    assert {ready["port"], live["port"]} <= ports

    config = tmp_path / "crmhub.yaml"
    config.write_text("sources: {}\nconnections: {}\nmappings: {}\n")
    settings = Settings(config_path=config, redis_url="redis://unused", key_prefix="k8s")
    app = create_app(settings, redis_client=fakeredis.FakeRedis())
    client = app.test_client()
    assert client.get(live["path"]).status_code == 200
    assert client.get(ready["path"]).status_code == 200

    service = by_kind("Service")["crmhub-web"]
    template = by_kind("Deployment")["crmhub-web"]["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= template.items()
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= ports


def test_exactly_one_beat_even_during_a_rollout() -> None:
    beat = by_kind("Deployment")["crmhub-beat"]
    assert beat["spec"]["replicas"] == 1
    assert beat["spec"]["strategy"] == {"type": "Recreate"}  # never two while rolling
    text = (ROOT / "deploy" / "kubernetes.yaml").read_text()
    assert "one-beat rule" in text


def test_settings_come_from_the_configmap_and_secret_and_are_documented() -> None:
    configmaps, secrets = by_kind("ConfigMap"), by_kind("Secret")
    for name, deployment in by_kind("Deployment").items():
        sources = container(deployment)["envFrom"]
        assert {s["configMapRef"]["name"] for s in sources if "configMapRef" in s} <= set(
            configmaps
        ), name
        assert {s["secretRef"]["name"] for s in sources if "secretRef" in s} <= set(secrets)
    names = {
        key
        for doc in (*configmaps.values(), *secrets.values())
        for key in (doc.get("data") or doc.get("stringData") or {})
        if key.startswith("CRMHUB_")
    }
    assert names <= DOCUMENTED, names - DOCUMENTED


def test_the_configmaps_crmhub_yaml_is_a_valid_configuration(tmp_path: Path) -> None:
    data = by_kind("ConfigMap")["crmhub-settings"]["data"]
    secrets = by_kind("Secret")["crmhub-secrets"]["stringData"]
    path = tmp_path / "crmhub.yaml"
    path.write_text(data["crmhub.yaml"])
    config = load_config(path, secrets, connectors=CONNECTORS)
    assert config.connections["crm"].rate_limit is not None
    mounted = container(by_kind("Deployment")["crmhub-web"])["volumeMounts"][0]["mountPath"]
    assert data["CRMHUB_CONFIG"] == f"{mounted}/crmhub.yaml"


@pytest.mark.parametrize("setting", ["CRMHUB_BROKER_URL", "CRMHUB_REDIS_URL"])
def test_the_secret_names_the_engines_of_the_readme(setting: str) -> None:
    secrets = by_kind("Secret")["crmhub-secrets"]["stringData"]
    assert setting in secrets
    assert Settings.from_env({setting: secrets[setting]})  # a URL the settings accept
