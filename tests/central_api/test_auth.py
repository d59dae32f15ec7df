"""Tokens, the 401/403 matrix over routes × roles, login throttling, ?access_token= on stream/snapshots only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from central.auth import decode_token, issue_token
from central.workflow import Actor
from gridwatch.contract.enums import UserRole

from .conftest import ROLES, Central

ALL = set(ROLES)
ALERT_WORKERS = {"operator", "officer", "supervisor", "admin"}
MAINTENANCE = {"engineer", "operator", "supervisor", "admin"}
FUTURE = (datetime.now(UTC) + timedelta(days=1)).isoformat()

# (method, path, json body, roles allowed). Targets are unknown ids so allowed calls end fast (404),
# which proves the call got past authentication and authorisation.
MATRIX: list[tuple[str, str, dict[str, object] | None, set[str]]] = [
    ("GET", "/api/v1/me", None, ALL),
    ("GET", "/api/v1/site", None, ALL),
    ("GET", "/api/v1/positions", None, ALL),
    ("GET", "/api/v1/alerts", None, ALL),
    ("GET", "/api/v1/alerts/nope", None, ALL),
    ("POST", "/api/v1/alerts/nope/ack", None, ALERT_WORKERS),
    ("POST", "/api/v1/alerts/nope/dispatch", {"officer": "off"}, ALERT_WORKERS),
    ("POST", "/api/v1/alerts/nope/resolve", {"resolution": "real", "note": "x"}, ALERT_WORKERS),
    ("POST", "/api/v1/alerts/nope/close", None, {"supervisor", "admin"}),
    ("POST", "/api/v1/alerts/nope/shelve", {"until": FUTURE, "reason": "works"}, {"operator", "supervisor", "admin"}),
    ("POST", "/api/v1/alerts/nope/comment", {"note": "hello"}, ALERT_WORKERS),
    ("GET", "/api/v1/edges", None, ALL),
    ("GET", "/api/v1/devices", None, ALL),
    ("GET", "/api/v1/people/nobody/location", None, ALL),
    ("GET", "/api/v1/grids/nogrid/headcount", None, ALL),
    ("POST", "/api/v1/grids/nogrid/rollcall", None, {"operator", "officer", "supervisor", "admin"}),
    ("GET", "/api/v1/telemetry?measurement=position&subject=T-1", None, ALL),
    ("GET", "/api/v1/snapshots/" + "0" * 64, None, ALL),
    ("POST", "/api/v1/devices/nodev/out_of_service", {"until": FUTURE, "reason": "repair"}, MAINTENANCE),
    ("POST", "/api/v1/devices/nodev/in_service", None, MAINTENANCE),
    ("POST", "/api/v1/zones/nozone/walk_test", {"minutes": 5}, MAINTENANCE),
    ("GET", "/api/v1/kpi", None, {"operator", "supervisor", "engineer", "admin"}),
    ("GET", "/api/v1/audit", None, {"supervisor", "admin"}),
    ("GET", "/api/v1/audit/verify", None, {"supervisor", "admin"}),
]


def _call(http: httpx.Client, method: str, path: str, body: dict[str, object] | None) -> httpx.Response:
    return http.request(method, path, json=body)


@pytest.mark.integration
@pytest.mark.parametrize(("method", "path", "body", "allowed"), MATRIX, ids=[f"{m} {p}" for m, p, _b, _a in MATRIX])
def test_routes_answer_401_without_token_and_403_for_other_roles(
    central: Central, method: str, path: str, body: dict[str, object] | None, allowed: set[str]
) -> None:
    with central.client(None) as anonymous:
        r = _call(anonymous, method, path, body)
        assert r.status_code == 401, r.text
        assert r.headers["www-authenticate"] == "Bearer"
        assert "detail" in r.json()
    with httpx.Client(base_url=central.url, headers={"Authorization": "Bearer not.a.token"}) as forged:
        assert _call(forged, method, path, body).status_code == 401
    for role in ROLES:
        with central.client(role) as http:
            r = _call(http, method, path, body)
            if role in allowed:
                assert r.status_code not in (401, 403, 500), f"{role}: {r.status_code} {r.text}"
            else:
                assert r.status_code == 403, f"{role}: {r.status_code} {r.text}"
                assert role in r.json()["detail"]


@pytest.mark.integration
def test_token_names_user_and_role_and_me_echoes_them(central: Central) -> None:
    with central.client("supervisor") as http:
        assert http.get("/api/v1/me").json() == {
            "username": "user-supervisor",
            "role": "supervisor",
            "name": "",
            "grids": [],
        }
    r = httpx.post(f"{central.url}/api/v1/auth/token", data={"username": "admin", "password": "admin-pass-123"})
    body = r.json()
    assert body["token_type"] == "bearer"
    actor = decode_token(body["access_token"], central.settings.secret_key)
    assert actor == Actor("admin", UserRole.ADMIN)


@pytest.mark.integration
def test_expired_or_foreign_tokens_are_refused(central: Central) -> None:
    actor = Actor("admin", UserRole.ADMIN)
    expired = issue_token(actor, central.settings.secret_key, 60, now=datetime.now(UTC) - timedelta(hours=1))
    forged = issue_token(actor, "another-key-" * 4, 3600)
    for token in (expired, forged):
        r = httpx.get(f"{central.url}/api/v1/alerts", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401
        assert r.json()["detail"] == "invalid or expired token"


@pytest.mark.integration
def test_wrong_password_is_401_and_the_sixth_failure_in_a_minute_is_429(central: Central) -> None:
    url = f"{central.url}/api/v1/auth/token"
    for _ in range(5):
        r = httpx.post(url, data={"username": "user-engineer", "password": "wrong"})
        assert r.status_code == 401
        assert r.json() == {"detail": "wrong username or password"}
    r = httpx.post(url, data={"username": "user-engineer", "password": "wrong"})
    assert r.status_code == 429
    assert int(r.headers["retry-after"]) >= 1
    # even the right password waits: the throttle is per username, before the password is checked
    assert httpx.post(url, data={"username": "user-engineer", "password": "engineer-pass-123"}).status_code == 429
    # other users are not affected
    assert httpx.post(url, data={"username": "user-officer", "password": "officer-pass-123"}).status_code == 200


@pytest.mark.integration
def test_query_token_is_accepted_on_snapshots_but_not_elsewhere(central: Central) -> None:
    token = central.tokens["officer"]
    r = httpx.get(f"{central.url}/api/v1/snapshots/{'a' * 64}", params={"access_token": token})
    assert r.status_code == 404  # authenticated, the snapshot just is not there
    r = httpx.get(f"{central.url}/api/v1/alerts", params={"access_token": token})
    assert r.status_code == 401


@pytest.mark.integration
def test_token_route_rejects_a_missing_form_with_422_json(central: Central) -> None:
    r = httpx.post(f"{central.url}/api/v1/auth/token", data={"username": "admin"})
    assert r.status_code == 422
    assert any(e["loc"] == ["body", "password"] for e in r.json()["detail"])
