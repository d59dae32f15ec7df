"""Every central_core test runs against SQLite (a temp file) and PostgreSQL (a fresh database on the
`postgres_server` fixture's server: the machine's, or a throwaway cluster)."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy.engine import make_url

from central.service import CentralService
from central.store.db import Database, open_database
from central.workflow import Actor
from gridwatch.clock import FakeClock
from gridwatch.config.models import SiteConfig
from gridwatch.contract.base import new_event_id
from gridwatch.contract.enums import Condition, Level, UserRole
from gridwatch.contract.uplink import AlertTransition, Subject
from tests.conftest import libpq_url

SITE: dict[str, Any] = {
    "site": {"id": "s1"},
    "areas": [
        {
            "id": "ward-1",
            "supervisor": "sup-wang",
            "grids": [
                {
                    "id": "g1",
                    "officer": "off-li",
                    "polygon": [[0, 0], [10, 0], [10, 10], [0, 10]],
                    "expected_headcount": 2,
                },
            ],
        },
    ],
    "zones": [
        {"id": "north", "kind": "perimeter", "area": "ward-1"},
        {"id": "south", "kind": "perimeter", "area": "ward-1"},
        {"id": "yard", "kind": "yard", "area": "ward-1"},
    ],
    "devices": [{"id": "ir-n-1", "family": "perimeter_ir", "zone": "north"}],
    "people": [
        {"id": "p1", "role": "inmate", "grid": "g1", "tag": "t1"},
        {"id": "p2", "role": "inmate", "grid": "g1", "tag": "t2"},
        {"id": "p3", "role": "supervisee", "band": "b3"},
    ],
    "edges": [{"id": "edge-a", "areas": ["ward-1"]}],
    "central": {
        "escalation": {"high_s": 30, "medium_s": 300, "low_s": 1800},
        "edge_offline_s": 30,
        "users": [
            {"username": "op-zhang", "role": "operator", "password": "op-secret"},
            {"username": "eng-ma", "role": "engineer", "password": ""},
        ],
    },
    "response_plans": {"perimeter.intrusion": ["look at camera", "send patrol", "report"]},
}

OPERATOR = Actor("op-zhang", UserRole.OPERATOR)
OFFICER = Actor("off-li", UserRole.OFFICER)
SUPERVISOR = Actor("sup-wang", UserRole.SUPERVISOR)
ENGINEER = Actor("eng-ma", UserRole.ENGINEER)
ADMIN = Actor("admin", UserRole.ADMIN)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'central.db'}"
        return
    admin_url: str = request.getfixturevalue("postgres_server")  # started only when a PG test runs
    admin = libpq_url(admin_url)
    name = f"gridwatch_test_{secrets.token_hex(6)}"
    try:
        with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')  # name is generated here, never from input
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL at {make_url(admin_url).render_as_string()} is not reachable: {exc}", pytrace=False)
    yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    database = open_database(db_url)
    yield database
    database.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def site() -> SiteConfig:
    return SiteConfig.model_validate(SITE)


@dataclass
class Published:
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def __call__(self, event: str, data: dict[str, Any]) -> None:
        self.events.append((event, data))

    def of(self, name: str) -> list[dict[str, Any]]:
        return [d for e, d in self.events if e == name]


@pytest.fixture
def published() -> Published:
    return Published()


@pytest.fixture
def service(db: Database, site: SiteConfig, clock: FakeClock, published: Published) -> CentralService:
    return CentralService(db, site, clock=clock, publish=published)


def transition(
    clock: FakeClock,
    alert_id: str = "a1",
    *,
    rule: str = "perimeter.intrusion",
    level: Level = Level.MEDIUM,
    state: Condition = Condition.ACTIVE,
    first_seen: datetime | None = None,
    ts: datetime | None = None,
    zone: str | None = "north",
    area: str | None = "ward-1",
    grid: str | None = None,
    subject: str = "north",
    devices: tuple[str, ...] = ("ir-n-1",),
    suppressed: str | None = None,
    snapshot: str | None = None,
    detail: dict[str, Any] | None = None,
) -> AlertTransition:
    now = clock.now()
    return AlertTransition(
        event_id=new_event_id(),
        alert_id=alert_id,
        rule=rule,
        level=level,
        state=state,
        ts=ts or now,
        first_seen=first_seen or ts or now,
        site="s1",
        edge="edge-a",
        area=area,
        grid=grid,
        zone=zone,
        subject=Subject(kind="zone", id=subject),
        devices=devices,
        title=f"{rule} {alert_id}",
        detail=detail or {},
        snapshot=snapshot,
        suppressed=suppressed,
    )


Raise = Callable[..., AlertTransition]


def ago(clock: FakeClock, seconds: float) -> datetime:
    return clock.now() - timedelta(seconds=seconds)
