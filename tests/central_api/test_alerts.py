"""Alerts published by an edge over MQTT reach the API; workflow over HTTP; dedup; malformed input; 422s."""

from __future__ import annotations

import hashlib
import re
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from .conftest import Central, alert_body


def _metric(central: Central, name: str, **labels: str) -> float:
    text = httpx.get(f"{central.url}/metrics").text
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        match = re.match(rf"^{name}(?:{{(.*)}})? (\S+)$", line)
        if match and ",".join(sorted((match.group(1) or "").split(","))) == want:
            return float(match.group(2))
    return 0.0


def _new_id() -> str:
    return f"a-{uuid.uuid4().hex[:12]}"


@pytest.mark.integration
def test_alert_from_edge_is_listed_with_the_contract_shape(central: Central) -> None:
    alert_id = _new_id()
    central.publish("edge-a", "alerts", alert_body(alert_id, level="medium"))
    detail = central.alert_detail(alert_id)
    assert detail["transitions"][0]["level"] == "medium"
    with central.client("operator") as http:
        page = http.get("/api/v1/alerts", params={"limit": 500, "level": "medium", "grid": "g1"}).json()
    assert set(page) == {"items", "next_cursor"}
    item = next(i for i in page["items"] if i["id"] == alert_id)
    for key in (
        "id",
        "rule",
        "level",
        "condition",
        "workflow",
        "site",
        "area",
        "grid",
        "zone",
        "subject",
        "devices",
        "title",
        "first_seen",
        "last_change",
        "snapshot",
        "escalated_to",
    ):
        assert key in item
    assert (item["condition"], item["workflow"], item["subject"]) == (
        "active",
        "new",
        {"kind": "zone", "id": "perim-n"},
    )
    assert detail["response_plan"]["steps"][0]["step"] == "look at the camera"


@pytest.mark.integration
def test_alert_list_pages_newest_first_with_a_cursor(central: Central) -> None:
    ids = [_new_id() for _ in range(3)]
    for alert_id in ids:
        central.publish("edge-a", "alerts", alert_body(alert_id, rule="access.door_held"))
        central.alert_detail(alert_id)
    with central.client("officer") as http:
        first = http.get("/api/v1/alerts", params={"rule": "access.door_held", "limit": 2}).json()
        second = http.get(
            "/api/v1/alerts", params={"rule": "access.door_held", "limit": 2, "cursor": first["next_cursor"]}
        ).json()
    seen = [i["id"] for i in first["items"] + second["items"]]
    assert seen[:3] == list(reversed(ids))
    assert second["next_cursor"] is None


@pytest.mark.integration
def test_workflow_ack_dispatch_resolve_close_over_http(central: Central) -> None:
    alert_id = _new_id()
    central.publish("edge-a", "alerts", alert_body(alert_id, level="medium"))
    central.alert_detail(alert_id)
    with central.client("operator") as op, central.client("supervisor") as sup:
        r = op.post(f"/api/v1/alerts/{alert_id}/ack", json={"note": "seen on camera"})
        assert r.status_code == 200, r.text
        assert r.json()["workflow"] == "acknowledged"
        assert op.post(f"/api/v1/alerts/{alert_id}/ack").status_code == 409
        assert op.post(f"/api/v1/alerts/{alert_id}/dispatch", json={"officer": "off"}).json()["workflow"] == (
            "dispatched"
        )
        r = op.post(
            f"/api/v1/alerts/{alert_id}/resolve",
            json={"resolution": "nuisance", "note": "a fox", "steps_done": ["look at the camera"]},
        )
        assert r.json()["workflow"] == "resolved"
        r = op.post(f"/api/v1/alerts/{alert_id}/close")
        assert r.status_code == 403
        r = sup.post(f"/api/v1/alerts/{alert_id}/comment", json={"note": "reviewed"})
        assert r.status_code == 200
        r = sup.post(f"/api/v1/alerts/{alert_id}/close", json={"note": "ok"})
        assert r.status_code == 200, r.text
        assert r.json()["workflow"] == "closed"
        history = sup.get(f"/api/v1/alerts/{alert_id}").json()["history"]
    actions = [(e["action"], e["actor"]) for e in history]
    for expected in [
        ("ack", "user-operator"),
        ("dispatch", "user-operator"),
        ("resolve", "user-operator"),
        ("comment", "user-supervisor"),
        ("close", "user-supervisor"),
    ]:
        assert expected in actions
    with central.client("admin") as admin:
        audit = admin.get("/api/v1/audit", params={"limit": 500}).json()["items"]
        assert any(alert_id in str(a.get("target")) for a in audit)
        assert admin.get("/api/v1/audit/verify").json()["ok"] is True


@pytest.mark.integration
def test_high_alert_cannot_be_closed_while_active_and_unknown_alert_is_404(central: Central) -> None:
    alert_id = _new_id()
    central.publish("edge-a", "alerts", alert_body(alert_id, level="high"))
    central.alert_detail(alert_id)
    with central.client("supervisor") as sup:
        assert sup.post(f"/api/v1/alerts/{alert_id}/resolve", json={"resolution": "real"}).status_code == 200
        r = sup.post(f"/api/v1/alerts/{alert_id}/close")
        assert r.status_code == 409
        assert "active" in r.json()["detail"]
        r = sup.post("/api/v1/alerts/no-such-alert/ack")
        assert r.status_code == 404
        assert "detail" in r.json()


@pytest.mark.integration
def test_resent_event_id_is_stored_once(central: Central) -> None:
    alert_id = _new_id()
    body = alert_body(alert_id)
    before = _metric(central, "gridwatch_central_ingest_duplicates_total", kind="alerts")
    central.publish("edge-a", "alerts", body)
    central.alert_detail(alert_id)
    central.publish("edge-a", "alerts", {**body, "title": "resent after a crash"})
    central.wait_for(
        lambda: _metric(central, "gridwatch_central_ingest_duplicates_total", kind="alerts") > before,
        what="the duplicate to be counted",
    )
    detail = central.alert_detail(alert_id)
    assert len(detail["transitions"]) == 1
    assert detail["title"] == body["title"]


@pytest.mark.integration
def test_malformed_uplink_is_counted_and_ingest_goes_on(central: Central) -> None:
    before = _metric(central, "gridwatch_central_ingest_malformed_total", reason="not_json")
    schema_before = _metric(central, "gridwatch_central_ingest_malformed_total", reason="schema")
    central.publish("edge-a", "alerts", b"{not json")
    central.publish("edge-a", "alerts", {**alert_body(_new_id()), "level": "catastrophic"})
    central.publish("edge-a", "snapshots", b"\xff\xd8 jpeg", "0" * 64)  # bytes do not hash to the name
    alert_id = _new_id()
    central.publish("edge-a", "alerts", alert_body(alert_id))
    central.alert_detail(alert_id)
    assert _metric(central, "gridwatch_central_ingest_malformed_total", reason="not_json") == before + 1
    assert _metric(central, "gridwatch_central_ingest_malformed_total", reason="schema") == schema_before + 1
    assert _metric(central, "gridwatch_central_ingest_malformed_total", reason="snapshot_hash") >= 1


@pytest.mark.integration
def test_snapshot_published_by_edge_is_served_as_jpeg(central: Central) -> None:
    jpeg = b"\xff\xd8\xff\xe0" + uuid.uuid4().bytes + b"\xff\xd9"
    sha = hashlib.sha256(jpeg).hexdigest()
    central.publish("edge-a", "snapshots", jpeg, sha)
    with central.client("officer") as http:
        r = central.wait_for(
            lambda: (resp := http.get(f"/api/v1/snapshots/{sha}")).status_code == 200 and resp, what="the snapshot"
        )
    assert r.headers["content-type"] == "image/jpeg"
    assert r.content == jpeg


@pytest.mark.integration
@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/api/v1/alerts?level=catastrophic", None),
        ("GET", "/api/v1/alerts?limit=0", None),
        ("GET", "/api/v1/alerts?since=yesterday", None),
        ("POST", "/api/v1/alerts/x/dispatch", {}),
        ("POST", "/api/v1/alerts/x/resolve", {"resolution": "maybe"}),
        ("POST", "/api/v1/alerts/x/shelve", {"until": "2030-01-01T00:00:00", "reason": "naive time"}),
        ("POST", "/api/v1/alerts/x/comment", {"note": ""}),
        ("POST", "/api/v1/alerts/x/ack", {"note": "x", "extra": 1}),
        ("GET", "/api/v1/snapshots/not-a-hash", None),
        ("POST", "/api/v1/zones/perim-n/walk_test", {"minutes": 0}),
        ("GET", "/api/v1/telemetry?measurement=mood&subject=T-1", None),
    ],
)
def test_bad_requests_are_422_json(central: Central, method: str, path: str, body: object) -> None:
    with central.client("admin") as http:
        r = http.request(method, path, json=body)
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert isinstance(detail, list) and detail and {"loc", "msg", "type"} <= set(detail[0])


@pytest.mark.integration
def test_shelve_in_the_past_is_refused_by_the_workflow(central: Central) -> None:
    alert_id = _new_id()
    central.publish("edge-a", "alerts", alert_body(alert_id))
    central.alert_detail(alert_id)
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    with central.client("operator") as http:
        r = http.post(f"/api/v1/alerts/{alert_id}/shelve", json={"until": past, "reason": "x"})
    assert r.status_code == 422
    assert "future" in r.json()["detail"][0]["msg"]


@pytest.mark.integration
def test_health_ready_and_metrics(central: Central) -> None:
    assert httpx.get(f"{central.url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{central.url}/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "broker": True, "database": True, "tsdb": True}
    text = httpx.get(f"{central.url}/metrics").text
    assert "gridwatch_central_ingest_messages_total" in text
    assert 'gridwatch_central_http_request_seconds_count{method="GET",route="/healthz",status="200"}' in text
