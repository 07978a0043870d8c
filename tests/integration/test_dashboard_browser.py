"""The dashboard in a real headless Chromium (Debian's `chromium`, driven through its
`chromedriver` by Selenium; `make browser` installs both, never a downloaded build), against
real processes: the Procfile's web (gunicorn) and worker (Celery), a real Redis and the fake
REST CRM over loopback.

An operator signs in with a token, finds a dead letter by the customer's email, fixes the
field with edit-and-replay (the mapping's dry run shown first) and sees the record delivered
at the target; replays a filter's dead letters in bulk, the count shown before anything runs;
a form posted without its CSRF token is refused. Each page is saved as a screenshot (under
$DASHBOARD_SCREENSHOTS when set, as for docs/screenshots/, else in the test's directory).
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hubtest import DEMO_CRM_CONFIG, STRIPE_SECRET, signed, stripe_event
from operator_hub import ADMIN_TOKEN, OPS_TOKEN, LiveHub
from processes import DemoTarget, wait_until
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

pytestmark = pytest.mark.integration
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
#: without the background-networking switches Chromium dials out on its own (updates, sync,
#: QUIC probes), which a closed network refuses and a test must not depend on
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1400,1000",
)


class Live:
    def __init__(self, url: str, target: DemoTarget, shots: Path) -> None:
        self.url = url
        self.target = target
        self.shots = shots
        self.api = httpx.Client(
            base_url=f"{url}/api/v1", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=10
        )

    def send(self, email: str, **extra: Any) -> str:
        body, headers = signed(
            "stripe",
            stripe_event(f"evt_ui_{uuid.uuid4().hex[:10]}", email=email, **extra),
            STRIPE_SECRET,
        )
        answer = httpx.post(
            f"{self.url}/webhooks/stripe", content=body, headers=headers, timeout=10
        )
        assert answer.status_code == 202, answer.text
        return str(answer.json()["event_id"])

    def dead(self, **query: str) -> list[dict[str, Any]]:
        return list(self.api.get("/dead-letters", params=query).json()["dead_letters"])

    def record(self, email: str) -> dict[str, Any] | None:
        return next((r for r in self.target.records("contacts") if r["key"] == email), None)


@pytest.fixture
def live(tmp_path: Path, real_redis_url: str) -> Iterator[Live]:
    if not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)):
        pytest.fail("Debian's chromium and chromium-driver are needed: run `make browser`")
    target = DemoTarget()
    shots = Path(os.environ.get("DASHBOARD_SCREENSHOTS") or tmp_path / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    try:
        running = LiveHub(
            tmp_path, real_redis_url, DEMO_CRM_CONFIG.format(target=target.url), ("web", "worker")
        )
    except BaseException:
        target.stop()
        raise
    try:
        yield Live(running.url, target, shots)
    finally:
        running.stop()
        target.stop()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[WebDriver]:
    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager: never fetch anything
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    profile = tmp_path / "chromium-profile"
    options.add_argument(f"--user-data-dir={profile}")
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def follow(driver: WebDriver, element: Any) -> None:
    """Click something that loads a page, and wait for that page (not the old one)."""
    page = driver.find_element(By.TAG_NAME, "html")
    element.click()

    def old_page_gone(_: WebDriver) -> bool:
        try:
            page.is_enabled()
        except StaleElementReferenceException:
            return True
        except WebDriverException as exc:
            # chromedriver's answer when asked about a node mid-navigation: gone, too
            if "does not belong to the document" in str(exc):
                return True
            raise
        return False

    WebDriverWait(driver, 20).until(old_page_gone)
    WebDriverWait(driver, 20).until(
        lambda d: d.execute_script("return document.readyState") == "complete"
    )


def shot(driver: WebDriver, live: Live, name: str) -> None:
    driver.save_screenshot(str(live.shots / f"{name}.png"))


def sign_in(driver: WebDriver, live: Live, token: str = OPS_TOKEN) -> None:
    driver.get(f"{live.url}/ui/")
    assert "/ui/login" in driver.current_url
    shot(driver, live, "login")
    driver.find_element(By.ID, "token").send_keys(token)
    follow(driver, driver.find_element(By.ID, "sign-in"))
    assert driver.find_elements(By.ID, "connections"), "the overview after signing in"


def test_find_a_dead_letter_by_email_fix_it_and_see_it_delivered(
    live: Live, browser: WebDriver
) -> None:
    live.send("grace@example.com", phone="not a phone", name="Grace Hopper")
    live.send("ada@example.com", name="Ada Lovelace")
    wait_until(lambda: live.dead(q="grace@example.com"), timeout=30, message="the dead letter")
    wait_until(lambda: live.record("ada@example.com"), timeout=30, message="ada delivered")
    sign_in(browser, live)
    shot(browser, live, "overview")

    browser.get(f"{live.url}/ui/dead-letters")
    browser.find_element(By.ID, "q").send_keys("Grace@Example.com")
    follow(browser, browser.find_element(By.ID, "filter"))
    rows = browser.find_elements(By.CSS_SELECTOR, "#dead-letters tbody a code")
    assert len(rows) == 1
    shot(browser, live, "dead-letters")
    follow(browser, rows[0])
    assert (
        "mapping" in browser.find_element(By.ID, "dead-error").text
        or "phone" in browser.page_source
    )
    shot(browser, live, "dead-letter")

    phone = browser.find_element(By.ID, "field-phone")
    phone.clear()
    phone.send_keys("+1 415 555 0100")
    follow(browser, browser.find_element(By.ID, "preview"))
    assert browser.find_elements(By.ID, "dry-run-ok"), browser.page_source[:3000]
    assert "+14155550100" in browser.find_element(By.ID, "dry-run").text  # the transform ran
    shot(browser, live, "edit-preview")
    assert live.record("grace@example.com") is None  # nothing sent before the submit
    follow(browser, browser.find_element(By.ID, "submit-edit"))

    wait_until(lambda: live.record("grace@example.com"), timeout=30, message="grace delivered")
    record = live.record("grace@example.com")
    assert record is not None
    assert record["fields"]["phone"] == "+14155550100" and record["writes"] == 1
    assert record["fields"]["name"] == "Grace Hopper"
    assert "edited and replayed" in browser.page_source  # the page the submit led to
    edited = browser.find_element(By.CSS_SELECTOR, ".card a code").text
    browser.get(f"{live.url}/ui/events/{edited}")
    timeline = browser.find_element(By.CSS_SELECTOR, "ol.timeline").text
    assert "dead" in timeline and "delivered" in timeline  # both attempts, in order
    assert timeline.index("dead") < timeline.index("delivered")
    shot(browser, live, "event")
    browser.get(f"{live.url}/ui/connections/crm")
    shot(browser, live, "connection")
    browser.get(f"{live.url}/ui/actions")
    assert "edit" in browser.find_element(By.ID, "actions").text
    shot(browser, live, "actions")
    browser.get(f"{live.url}/ui/alerts")
    assert browser.find_element(By.ID, "alerts")
    shot(browser, live, "alerts")
    browser.get(f"{live.url}/ui/audit")
    assert "customer" in browser.find_element(By.ID, "audit").text
    shot(browser, live, "audit")


def test_bulk_replay_shows_the_count_first_then_delivers(live: Live, browser: WebDriver) -> None:
    live.target.fault(mode="validation", count=3, methods=["PUT"])
    emails = [f"bulk{n}@example.com" for n in range(3)]
    for email in emails:
        live.send(email)
    wait_until(
        lambda: len(live.dead(category="rejected_by_target")) == 3, timeout=30, message="3 dead"
    )
    sign_in(browser, live)
    browser.get(f"{live.url}/ui/dead-letters?connection=crm&category=rejected_by_target")
    follow(browser, browser.find_element(By.ID, "replay-all"))
    assert browser.find_element(By.ID, "count").text == "3"
    assert "Replay 3 dead letters?" in browser.find_element(By.ID, "confirm-title").text
    assert all(live.record(e) is None for e in emails)  # the count first, nothing run yet
    shot(browser, live, "bulk-confirm")
    follow(browser, browser.find_element(By.ID, "confirm"))
    wait_until(lambda: all(live.record(e) for e in emails), timeout=30, message="bulk delivered")
    assert "3 replayed" in browser.find_element(By.ID, "op-progress").text
    shot(browser, live, "operation")


def test_a_post_without_the_csrf_token_is_refused(live: Live, browser: WebDriver) -> None:
    sign_in(browser, live)
    browser.get(f"{live.url}/ui/connections/crm")
    # a form as another page would forge it: the session cookie goes along, the token not
    browser.execute_script(
        "const f = document.createElement('form'); f.method = 'post';"
        "f.action = '/ui/connections/crm/pause';"
        "const r = document.createElement('input'); r.name = 'reason'; r.value = 'forged';"
        "f.appendChild(r); document.body.appendChild(f); f.submit();"
    )
    wait_until(lambda: "Refused" in browser.page_source, timeout=10, message="the refusal")
    assert "CSRF" in browser.page_source
    assert live.api.get("/connections/crm").json()["paused"] is False
