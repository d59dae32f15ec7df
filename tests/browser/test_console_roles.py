"""The console's language switch, role-aware views (officer, supervisor, engineer), sound mute,
map grid panel and two consoles seeing each other's work, against the real central app and broker.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from gridwatch.contract.base import new_event_id
from gridwatch.contract.uplink import UplinkKind

from .conftest import Central, Edge

pytestmark = [pytest.mark.browser, pytest.mark.integration]

OWN_GRID, OTHER_GRID = "w1-g1", "w1-g2"  # off-li's grid (configs/demo-site.yaml) and a neighbour's


def _alert_id() -> str:
    return f"al-{uuid.uuid4().hex[:12]}"


def _row(page: Any, alert_id: str) -> Any:
    return page.locator(f"[data-testid=alarm-row][data-id='{alert_id}']")


def sign_in(page: Any, central: Central, username: str = "admin", password: str | None = None) -> None:
    page.goto(central.url + "/")
    page.get_by_test_id("login-username").fill(username)
    page.get_by_test_id("login-password").fill(password or central.admin_password)
    page.get_by_test_id("login-submit").click()
    page.get_by_test_id("app").wait_for(state="visible")
    page.locator("[data-testid=stream-status][data-state=live]").wait_for()


def _grid_alert(edge: Edge, alert_id: str, grid: str, zone: str = "w1-cells") -> None:
    edge.alert(
        alert_id,
        zone=zone,
        area="ward-1",
        grid=grid,
        rule="location.out_of_grid",
        level="medium",
        subject={"kind": "zone", "id": zone},
        title=f"Out of grid in {grid}",
        detail={},
    )


@pytest.fixture
def second(browser: Any) -> Iterator[Any]:
    """Another operator's console: its own browser context (own sessionStorage and login)."""
    context = browser.new_context(viewport={"width": 1600, "height": 900}, locale="en-GB")
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.set_default_timeout(10_000)
    yield pg
    context.close()
    assert not errors, f"JavaScript errors in the second console: {errors}"


def test_language_switch_changes_the_visible_text_and_persists(page: Any, central: Central, browser: Any) -> None:
    sign_in(page, central)
    assert page.get_by_test_id("tab-alarms").text_content() == "Alarms"
    page.get_by_test_id("lang").select_option("zh")
    assert page.get_by_test_id("tab-alarms").text_content() == "报警"
    assert page.get_by_test_id("logout").text_content() == "退出"
    assert page.get_by_test_id("stream-status").text_content() == "● 实时"
    assert page.get_by_test_id("me").text_content() == "admin（管理员）"
    assert page.evaluate("document.documentElement.lang") == "zh-CN"
    assert page.evaluate("localStorage.getItem('gridwatch.lang')") == "zh"

    page.reload()  # the token is in sessionStorage, the language in localStorage: both survive
    page.locator("[data-testid=stream-status][data-state=live]").wait_for()
    assert page.get_by_test_id("tab-health").text_content() == "设备状态"
    assert page.get_by_test_id("lang").input_value() == "zh"
    page.get_by_test_id("lang").select_option("en")
    assert page.get_by_test_id("tab-health").text_content() == "Health"

    # no stored choice: the browser's language decides
    context = browser.new_context(locale="zh-CN")
    try:
        pg = context.new_page()
        pg.goto(central.url + "/")
        pg.get_by_test_id("login-submit").filter(has_text="登录").wait_for()
        assert pg.get_by_test_id("login-lang").input_value() == "zh"
    finally:
        context.close()


def test_acknowledging_in_one_console_updates_the_other_within_two_seconds(
    page: Any, second: Any, central: Central, edge: Edge
) -> None:
    sign_in(page, central)
    sign_in(second, central)  # a second login: its own token and stream
    alert_id = _alert_id()
    edge.alert(alert_id, zone="perim-south")
    _row(page, alert_id).wait_for()
    _row(second, alert_id).wait_for()
    assert _row(second, alert_id).get_attribute("data-workflow") == "new"

    _row(page, alert_id).click()
    page.get_by_test_id("btn-ack").click()
    start = time.monotonic()
    second.locator(f"[data-testid=alarm-row][data-id='{alert_id}'][data-workflow=acknowledged]").wait_for(timeout=2_000)
    elapsed = time.monotonic() - start
    assert elapsed < 2.0, f"the second console saw the ack after {elapsed:.2f} s"
    assert "flash" not in (_row(second, alert_id).get_attribute("class") or "")


def test_an_officer_sees_only_the_alarms_of_their_own_grid(page: Any, central: Central, edge: Edge) -> None:
    own, other = _alert_id(), _alert_id()
    _grid_alert(edge, own, OWN_GRID)
    _grid_alert(edge, other, OTHER_GRID)

    # the API enforces it: list, detail (404 as if it did not exist) and workflow commands
    token = httpx.post(
        f"{central.url}/api/v1/auth/token", data={"username": "off-li", "password": central.officer_password}
    ).json()["access_token"]
    auth = {"Authorization": f"Bearer {token}"}
    deadline = time.monotonic() + 5
    ids: list[str] = []
    while time.monotonic() < deadline and own not in ids:
        ids = [a["id"] for a in httpx.get(f"{central.url}/api/v1/alerts?limit=500", headers=auth).json()["items"]]
        time.sleep(0.1)
    assert own in ids and other not in ids
    assert httpx.get(f"{central.url}/api/v1/alerts/{own}", headers=auth).status_code == 200
    assert httpx.get(f"{central.url}/api/v1/alerts/{other}", headers=auth).status_code == 404
    assert httpx.post(f"{central.url}/api/v1/alerts/{other}/ack", headers=auth, json={}).status_code == 404

    sign_in(page, central, "off-li", central.officer_password)
    assert page.get_by_test_id("me").text_content() == "off-li (officer)"
    _row(page, own).wait_for()
    assert _row(page, other).count() == 0
    assert page.get_by_test_id("tab-kpi").is_hidden()
    assert page.get_by_test_id("escalations").is_hidden()
    assert "mine" in (page.get_by_test_id(f"grid-{OWN_GRID}").get_attribute("class") or "")

    # live: the stream carries the officer's grid only
    live_own, live_other = _alert_id(), _alert_id()
    _grid_alert(edge, live_other, OTHER_GRID)
    _grid_alert(edge, live_own, OWN_GRID)
    _row(page, live_own).wait_for()
    page.wait_for_timeout(300)
    assert _row(page, live_other).count() == 0
    assert page.locator(f"[data-testid=alarm-row][data-id='{other}']").count() == 0


def test_supervisor_sees_escalations_and_the_kpi_tab_after_a_resolved_alarm(
    page: Any, central: Central, edge: Edge
) -> None:
    sign_in(page, central, "sup-wang", central.supervisor_password)
    assert page.get_by_test_id("escalations").is_visible()
    alert_id = _alert_id()
    edge.alert(alert_id, zone="perim-east")
    _row(page, alert_id).click()
    page.get_by_test_id("detail-title").filter(has_text="east fence").wait_for()
    page.get_by_test_id("resolve-resolution").select_option("nuisance")
    page.get_by_test_id("btn-resolve").click()
    page.get_by_test_id("detail-workflow").filter(has_text="resolved").wait_for()

    # resolving with the response plan unticked escalates: the notice stays in the panel
    item = page.locator(f"[data-testid=escalation-item][data-id='{alert_id}']")
    item.wait_for()
    assert item.get_attribute("data-kind") == "steps_skipped"
    assert "sup-wang" in (item.text_content() or "")

    page.get_by_test_id("tab-kpi").click()
    row = page.locator("[data-testid=kpi-perimeter-row][data-zone=perim-east]")
    row.wait_for()
    assert int(row.get_by_test_id("kpi-resolved").text_content() or "0") >= 1
    assert re.fullmatch(r"\d+(\.\d+)?%", row.get_by_test_id("kpi-nar").text_content() or "")
    assert int(page.get_by_test_id("kpi-site-alarms-value").text_content() or "0") >= 1
    page.locator("[data-testid=kpi-operator-row][data-key=sup-wang]").wait_for()


def test_mute_silences_the_tone_for_five_minutes_with_a_countdown(page: Any, central: Central, edge: Edge) -> None:
    sign_in(page, central)
    alert_id = _alert_id()
    edge.alert(alert_id, zone="perim-north")
    _row(page, alert_id).wait_for()
    assert page.evaluate("document.body.dataset.tone") == "on"

    page.get_by_test_id("mute").click()
    countdown = page.get_by_test_id("mute-countdown")
    countdown.wait_for(state="visible")
    first = countdown.text_content() or ""
    assert re.fullmatch(r"muted (5:00|4:5\d)", first), first
    assert page.evaluate("document.body.dataset.tone") == "muted"
    assert "flash" in (_row(page, alert_id).get_attribute("class") or ""), "a muted high alarm still flashes"
    page.wait_for_function(f"() => document.querySelector('[data-testid=mute-countdown]').textContent !== '{first}'")

    page.get_by_test_id("mute").click()  # unmute
    assert countdown.is_hidden()
    assert page.evaluate("document.body.dataset.tone") == "on"


def test_clicking_a_grid_shows_its_headcount_and_a_roll_call_answer(page: Any, central: Central) -> None:
    sign_in(page, central)
    page.get_by_test_id(f"grid-{OWN_GRID}").click()
    panel = page.get_by_test_id("grid-panel")
    panel.wait_for(state="visible")
    count = page.get_by_test_id("headcount")
    count.wait_for()
    assert count.get_attribute("data-expected") == "14"
    assert re.match(r"\d+ / 14", count.text_content() or "")
    assert OWN_GRID in (page.get_by_test_id("grid-panel-title").text_content() or "")

    # no edge answers commands in this test: the 504 is shown inline
    page.get_by_test_id("btn-rollcall").click()
    result = page.get_by_test_id("rollcall-result")
    result.wait_for()
    assert result.get_attribute("data-status") == "504"
    assert "did not answer" in (result.text_content() or "")


def test_map_draws_devices_with_health_and_thins_thousands_of_tags(page: Any, central: Central) -> None:
    sign_in(page, central)
    cameras = page.locator("[data-testid^=device-][data-family=camera]")
    assert cameras.count() >= 1
    page.wait_for_function("() => document.querySelector('[data-testid^=device-][data-health]') !== null")
    # 5,000 tags: at most 2,000 dots, and the map says so
    drawn = page.evaluate(
        """async () => {
            const map = await import('/map.js');
            const items = Array.from({length: 5000}, (_, i) => ({tag: `T${i}`, x: 20 + (i % 50), y: 70 + (i % 30)}));
            map.drawTags({items});
            return document.querySelectorAll('[data-testid=tag-dot]').length;
        }"""
    )
    assert drawn == 2000
    assert "2,000" in (page.get_by_test_id("tags-note").text_content() or "")


def test_an_engineer_starts_on_the_health_board(page: Any, central: Central) -> None:
    sign_in(page, central, "eng-ma", central.engineer_password)
    page.get_by_test_id("health").wait_for(state="visible")
    assert page.get_by_test_id("tab-health").get_attribute("aria-selected") == "true"
    assert page.get_by_test_id("tab-kpi").is_hidden()
    page.get_by_test_id("devices-table").wait_for()


def test_a_person_alarm_shows_the_persons_vitals_as_a_sparkline(page: Any, central: Central, edge: Edge) -> None:
    person, band = f"P-{uuid.uuid4().hex[:6]}", f"B-{uuid.uuid4().hex[:6]}"
    now = datetime.now(UTC)
    batch = [
        {
            "m": "vitals",
            "tags": {"person": person, "band": band},
            "fields": {"hr": 70 + 5 * i, "temp": 36.6},
            "ts": (now - timedelta(minutes=6 - i)).isoformat(),
        }
        for i in range(6)
    ]
    edge.publish(UplinkKind.TELEMETRY, json.dumps({"event_id": new_event_id(), "batch": batch}).encode())
    token = httpx.post(
        f"{central.url}/api/v1/auth/token", data={"username": "admin", "password": central.admin_password}
    ).json()["access_token"]
    deadline = time.monotonic() + 10
    points: list[Any] = []
    while time.monotonic() < deadline and len(points) < 6:
        resp = httpx.get(
            f"{central.url}/api/v1/telemetry",
            params={"measurement": "vitals", "subject": person},
            headers={"Authorization": f"Bearer {token}"},
        )
        points = resp.json().get("items", []) if resp.status_code == 200 else []
        time.sleep(0.2)
    assert len(points) == 6, "the vitals never reached the time-series store"

    sign_in(page, central)
    alert_id = _alert_id()
    edge.alert(
        alert_id,
        zone="w1-cells",
        area="ward-1",
        grid=OWN_GRID,
        rule="wristband.heart_rate",
        level="medium",
        subject={"kind": "person", "id": person},
        title=f"Heart rate high: {person}",
        detail={},
    )
    _row(page, alert_id).click()
    box = page.get_by_test_id("telemetry")
    box.get_by_test_id("sparkline").first.wait_for()
    assert box.get_by_test_id("sparkline").count() == 2  # heart rate and temperature
    assert "max 95" in (box.get_by_test_id("telemetry-vitals").text_content() or "")
    box.get_by_test_id("telemetry-positions").wait_for()
