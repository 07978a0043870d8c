"""Every configuration under examples/ (the recipes included) is one the hub accepts, exactly as
`crmhub config check` checks it, so an example can never rot; each recipe is listed in the
README and maps its vendor's documented payload (tests/fixtures/recipes/) without a problem.
tests/integration/test_recipes.py runs each one end to end."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import crmhub, make_settings

from core.config import load_config
from core.splitting import split_body

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml")) + sorted(
    (ROOT / "examples" / "recipes").glob("*.yaml")
)
RECIPES_DIR = ROOT / "examples" / "recipes"
RECIPES = sorted(RECIPES_DIR.glob("*.yaml"))
FIXTURES = ROOT / "tests" / "fixtures" / "recipes"
#: recipe -> its fixture: the vendor's documented payloads (and the records a fetch: reads)
RECIPE_FIXTURES = {
    "helpdesk-zendesk": "zendesk",
    "accounting-quickbooks": "quickbooks",
    "esignature-docusign": "docusign",
    "billing-stripe": "stripe",
    "forms-typeform": "typeform",
    "product-analytics-segment": "segment",
    "marketing-hubspot-salesforce": "hubspot-salesforce",
}


def secrets_named(node: Any) -> set[str]:
    """Every environment variable a configuration names (`*_env` keys, strings or lists)."""
    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if str(key).endswith("_env"):
                found |= {value} if isinstance(value, str) else set(value)
            else:
                found |= secrets_named(value)
    elif isinstance(node, list):
        for item in node:
            found |= secrets_named(item)
    return found


def test_there_is_a_recipe_per_use_case() -> None:
    assert {p.stem for p in RECIPES} == set(RECIPE_FIXTURES)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_example_passes_config_check(path: Path) -> None:
    names = secrets_named(yaml.safe_load(path.read_text()))
    env = {name: f"value-of-{name.lower()}" for name in names}
    settings = make_settings(path, "crmhub-examples", **env)
    result = crmhub(settings, "config", "check")
    assert result.exit_code == 0, result.output
    # and without its secrets it says which are missing, each by name
    bare = crmhub(make_settings(path, "crmhub-examples"), "config", "check")
    assert bare.exit_code == 2
    for name in names:
        assert name in bare.output


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_every_recipe_is_documented(path: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    assert f"examples/recipes/{path.name}" in readme
    header = path.read_text().split("\nsources:")[0]
    assert header.startswith("# Recipe: ")
    assert "What flows" in header and "crmhub serve" in header


def bodies(recipe: str) -> list[Any]:
    """The fixture's bodies as each mapping sees them: split like the source splits them, and
    with the records a fetch: would read under `fetched`."""
    fixture = json.loads((FIXTURES / f"{RECIPE_FIXTURES[recipe]}.json").read_text())
    assert fixture["doc"], "each fixture names the vendor page it follows"
    config = load_config(RECIPES_DIR / f"{recipe}.yaml", {}, check_secrets=False)
    sources = {name: source.split for name, source in config.sources.items()}
    out = []
    for key, body in fixture["bodies"].items():
        # a recipe with several sources (two-way) says which source lists each body
        split = sources[fixture["source_of"][key]] if "source_of" in fixture else None
        if len(sources) == 1:
            (split,) = sources.values()
        for piece in split_body(body, split) if split else [body]:
            if "records" in fixture:
                entity = piece["eventNotifications"][0]["dataChangeEvent"]["entities"][0]["name"]
                piece = {**piece, "fetched": fixture["records"][entity]}
            out.append((fixture.get("source_of", {}).get(key), piece))
    return out


@pytest.mark.parametrize("recipe", sorted(RECIPE_FIXTURES))
def test_every_recipe_mapping_maps_its_vendors_documented_payload(
    recipe: str, tmp_path: Path
) -> None:
    path = RECIPES_DIR / f"{recipe}.yaml"
    config = load_config(path, {}, check_secrets=False)
    env = {n: "x" for n in secrets_named(yaml.safe_load(path.read_text()))}
    settings = make_settings(path, "crmhub-examples", **env)
    mapped: dict[str, int] = dict.fromkeys(config.mappings, 0)
    for index, (source, body) in enumerate(bodies(recipe)):
        payload = tmp_path / f"{index}.json"
        payload.write_text(json.dumps(body))
        for name in config.mappings:
            if source is not None and config.mappings[name].source != source:
                continue
            result = crmhub(settings, "mappings", "test", name, str(payload), "--json")
            out = json.loads(result.output)
            if not out["routed"]:
                continue
            assert out["ok"], (name, index, out)
            mapped[name] += 1
    assert all(mapped.values()), f"a mapping no documented payload reaches: {mapped}"


def test_mappings_test_splits_a_whole_notification_as_the_receiver_does(tmp_path: Path) -> None:
    path = RECIPES_DIR / "accounting-quickbooks.yaml"
    env = {n: "x" for n in secrets_named(yaml.safe_load(path.read_text()))}
    settings = make_settings(path, "crmhub-examples", **env)
    payload = tmp_path / "notification.json"
    payload.write_text(json.dumps(fixture_of("quickbooks")["bodies"]["notification"]))
    result = crmhub(settings, "mappings", "test", "quickbooks-invoice-to-company", str(payload))
    out = crmhub(
        settings, "mappings", "test", "quickbooks-invoice-to-company", str(payload), "--json"
    )
    assert "--- event [2]" in result.output
    routed = [r["routed"] for r in json.loads(out.output)["results"]]
    assert routed == [True, False, False]  # the invoice only, of the three entities


def fixture_of(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return data
