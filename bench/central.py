"""Central's alert store and API, each next to its raw floor, in the same run.

1. Alert transitions ingested per second through `CentralService.ingest_alert` (one transaction each,
   exactly-once bookkeeping, history, events) into SQLite and into a fresh PostgreSQL database, vs
   raw SQLAlchemy Core inserts of the same rows (received, alert, workflow entry, transition; the
   clear updates the alert), one transaction per transition too, into another fresh database.
2. `GET /api/v1/alerts` p50/p99 at a steady 200 requests/s with 100,000 alerts stored (bulk-loaded
   with Core inserts into the ORM's tables), the real app under uvicorn in a subprocess, driven by
   httpx from a thread pool; latency counts from each request's scheduled time (no coordinated
   omission). The floor is `GET /healthz` of the same server at the same rate.

PostgreSQL is the machine's (127.0.0.1:5432, user postgres, trust auth), as the tests use it.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from bench.run import Row
    from gridwatch.contract.uplink import AlertTransition

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
N_TRANSITIONS = 2_000  # 1,000 alerts raised, then cleared
N_TRANSITIONS_PG = 600  # PostgreSQL commits wait for fsync (~100/s here even raw): fewer keep the section short
N_STORED = 100_000
RATE = 200  # requests/s
SECONDS = 6
SITE: dict[str, Any] = {
    "site": {"id": "bench-central", "timezone": "UTC"},
    "areas": [
        {
            "id": f"area-{a}",
            "supervisor": f"sup-{a}",
            "grids": [
                {"id": f"g-{a}-{g}", "officer": f"off-{a}-{g}", "polygon": [[0, 0], [10, 0], [10, 10], [0, 10]]}
                for g in range(5)
            ],
        }
        for a in range(4)
    ],
    "zones": [{"id": f"perim-{i}", "kind": "perimeter", "area": f"area-{i % 4}"} for i in range(8)],
    "devices": [{"id": f"ir-{i}", "family": "perimeter_ir", "zone": f"perim-{i}"} for i in range(8)],
    "edges": [{"id": "edge-a", "areas": [f"area-{a}" for a in range(4)]}],
    "central": {"users": [{"username": "op-zhang", "role": "operator"}]},
}


# -- databases -----------------------------------------------------------------------------------
@contextmanager
def fresh_db(kind: str, workdir: Path) -> Iterator[str]:
    """The URL of a new, empty database (a SQLite file, or a PostgreSQL database dropped afterwards)."""
    if kind == "sqlite":
        yield f"sqlite:///{workdir / f'central-{secrets.token_hex(4)}.db'}"
        return
    import psycopg
    from sqlalchemy.engine import make_url

    admin = PG_ADMIN.replace("postgresql+psycopg://", "postgresql://", 1)
    name = f"gridwatch_bench_{secrets.token_hex(6)}"
    with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')  # generated name, never input
    try:
        yield make_url(PG_ADMIN).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def transitions(n: int) -> list[AlertTransition]:
    """n/2 perimeter alerts raised, then the same alerts cleared (as an edge sends them)."""
    from gridwatch.contract.base import new_event_id
    from gridwatch.contract.enums import Condition, Level
    from gridwatch.contract.uplink import AlertTransition, Subject

    start = datetime.now(UTC) - timedelta(minutes=10)
    out = []
    half = n // 2
    for k in range(n):
        i = k % half
        state = Condition.ACTIVE if k < half else Condition.CLEARED
        ts = start + timedelta(milliseconds=k)
        out.append(
            AlertTransition(
                event_id=new_event_id(),
                alert_id=f"edge-a.perimeter.intrusion.{i:06d}",
                rule="perimeter.intrusion",
                level=Level.HIGH,
                state=state,
                ts=ts,
                first_seen=start + timedelta(milliseconds=i),
                site="bench-central",
                edge="edge-a",
                area=f"area-{i % 4}",
                grid=None,
                zone=f"perim-{i % 8}",
                subject=Subject(kind="zone", id=f"perim-{i % 8}"),
                devices=(f"ir-{i % 8}",),
                title=f"Intrusion at perimeter {i % 8}, beams 1+2",
                detail={"beams": [1, 2], "detector": f"ir-{i % 8}"},
            )
        )
    return out


def _ours(url: str, rows: list[AlertTransition]) -> float:
    from central.service import CentralService
    from central.store.db import open_database
    from gridwatch.config.models import SiteConfig

    db = open_database(url)
    service = CentralService(db, SiteConfig.model_validate(SITE))
    t0 = time.perf_counter()
    for t in rows:
        service.ingest_alert("edge-a", t)
    elapsed = time.perf_counter() - t0
    db.close()
    return len(rows) / elapsed


def _raw(url: str, rows: list[AlertTransition]) -> float:
    from sqlalchemy import insert, update

    from central.store.db import open_database
    from central.store.models import Alert, Received, Transition, WorkflowEntry

    db = open_database(url)
    seen: set[str] = set()
    now = datetime.now(UTC)
    t0 = time.perf_counter()
    for t in rows:
        with db.engine.begin() as conn:
            received = {"event_id": t.event_id, "edge": "edge-a", "kind": "alert", "received_at": now}
            conn.execute(insert(Received), received)
            if t.alert_id not in seen:
                seen.add(t.alert_id)
                conn.execute(insert(Alert), _alert_row(t))
                conn.execute(
                    insert(WorkflowEntry),
                    {
                        "alert_id": t.alert_id,
                        "ts": t.ts,
                        "actor": "edge:edge-a",
                        "action": "raised",
                        "from_state": None,
                        "to_state": "new",
                        "note": None,
                        "data": {"level": t.level.value, "condition": t.state.value},
                    },
                )
            else:
                conn.execute(
                    update(Alert)
                    .where(Alert.id == t.alert_id)
                    .values(condition=t.state.value, edge_ts=t.ts, last_change=t.ts, detail=dict(t.detail))
                )
            conn.execute(
                insert(Transition),
                {
                    "event_id": t.event_id,
                    "alert_id": t.alert_id,
                    "ts": t.ts,
                    "received_at": now,
                    "level": t.level.value,
                    "condition": t.state.value,
                    "title": t.title,
                    "detail": dict(t.detail),
                    "snapshot": None,
                    "suppressed": None,
                },
            )
    elapsed = time.perf_counter() - t0
    db.close()
    return len(rows) / elapsed


def _alert_row(t: AlertTransition) -> dict[str, Any]:
    return {
        "id": t.alert_id,
        "rule": t.rule,
        "level": t.level.value,
        "condition": t.state.value,
        "workflow": "new",
        "shelved_from": None,
        "shelved_until": None,
        "site": t.site,
        "edge": t.edge,
        "area": t.area,
        "grid": t.grid,
        "zone": t.zone,
        "subject_kind": t.subject.kind.value,
        "subject_id": t.subject.id,
        "devices": list(t.devices),
        "title": t.title,
        "detail": dict(t.detail),
        "snapshot": None,
        "suppressed": None,
        "origin": "edge",
        "first_seen": t.first_seen,
        "edge_ts": t.ts,
        "last_change": t.ts,
        "escalated_to": None,
        "escalation_step": 0,
        "escalated_at": None,
        "resolution": None,
        "officer": None,
    }


def bulk_load(url: str, n: int) -> None:
    """n alerts of mixed rules, levels, workflow states and grids over the last 30 days, Core inserts."""
    from sqlalchemy import insert

    from central.store.db import open_database
    from central.store.models import Alert

    rng = np.random.default_rng(3)
    rules = ["perimeter.intrusion", "location.restricted_zone", "access.door_forced", "location.tag_lost"]
    workflows = ["new", "acknowledged", "dispatched", "resolved", "closed"]
    levels = ["low", "medium", "high"]
    now = datetime.now(UTC)
    offsets = rng.uniform(0, 30 * 86400, n)
    db = open_database(url)
    chunk = 10_000
    for s in range(0, n, chunk):
        rows = []
        for i in range(s, min(s + chunk, n)):
            ts = now - timedelta(seconds=float(offsets[i]))
            a, g = i % 4, i % 5
            rows.append(
                {
                    "id": f"bulk-{i:07d}",
                    "rule": rules[i % 4],
                    "level": levels[(i // 4) % 3],
                    "condition": "cleared" if i % 3 else "active",
                    "workflow": workflows[(i // 16) % 5],
                    "shelved_from": None,
                    "shelved_until": None,
                    "site": "bench-central",
                    "edge": "edge-a",
                    "area": f"area-{a}",
                    "grid": f"g-{a}-{g}",
                    "zone": f"perim-{i % 8}",
                    "subject_kind": "person",
                    "subject_id": f"P-{i % 2000:05d}",
                    "devices": [f"T-{i % 2000:05d}"],
                    "title": f"Inmate P-{i % 2000:05d} in a restricted zone",
                    "detail": {"x": 12.5, "y": 40.25, "zone_kind": "restricted"},
                    "snapshot": None,
                    "suppressed": None,
                    "origin": "edge",
                    "first_seen": ts - timedelta(seconds=30),
                    "edge_ts": ts,
                    "last_change": ts,
                    "escalated_to": None,
                    "escalation_step": 0,
                    "escalated_at": None,
                    "resolution": None,
                    "officer": None,
                }
            )
        with db.engine.begin() as conn:
            conn.execute(insert(Alert), rows)
    db.close()


# -- the API server (subprocess) -----------------------------------------------------------------
def _serve_main(conf_path: Path) -> None:
    import logging

    import uvicorn

    from central.app import create_app
    from central.settings import Settings
    from gridwatch.config.models import SiteConfig

    logging.basicConfig(level=logging.ERROR)
    conf = json.loads(conf_path.read_text())
    settings = Settings(
        site=SiteConfig.model_validate(SITE),
        secret_key=conf["secret_key"],
        bind=f"127.0.0.1:{conf['port']}",
        uplink_broker=conf["uplink_broker"],
        database_url=conf["database_url"],
        tsdb_url=conf["tsdb_url"],
        static_dir=None,
    )
    uvicorn.run(create_app(settings), host="127.0.0.1", port=conf["port"], log_level="error", access_log=False)


class _Driver:
    """httpx clients on a thread pool (one client per thread, kept across runs, so connections stay warm)."""

    def __init__(self, headers: dict[str, str], workers: int = 32) -> None:
        self.headers = headers
        self.local = threading.local()
        self.pool = ThreadPoolExecutor(max_workers=workers)

    def _get(self, url: str) -> bool:
        import httpx

        client = getattr(self.local, "client", None)
        if client is None:
            client = self.local.client = httpx.Client(headers=self.headers, timeout=30)
        try:
            return client.get(url).status_code == 200
        except httpx.HTTPError:
            return False

    def steady(self, url: str, rate: int, seconds: float) -> tuple[float, float, int]:
        """GET `url` at a steady `rate`; (p50 ms, p99 ms, errors), latency from each scheduled time."""
        n = int(rate * seconds)
        lat: list[float] = [0.0] * n
        errors = [0]

        def one(i: int, due: float) -> None:
            if not self._get(url):
                errors[0] += 1
            lat[i] = time.perf_counter() - due

        t0 = time.perf_counter() + 0.05
        futures = []
        for i in range(n):
            due = t0 + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            futures.append(self.pool.submit(one, i, due))
        for f in futures:
            f.result()
        arr = np.array(lat) * 1000
        return float(np.percentile(arr, 50)), float(np.percentile(arr, 99)), errors[0]

    def sequential(self, url: str, n: int) -> float:
        """p50 ms of `n` requests one after another (no queueing: the service time)."""

        def run() -> list[float]:
            out = []
            for _ in range(n):
                t0 = time.perf_counter()
                self._get(url)
                out.append(time.perf_counter() - t0)
            return out

        return float(np.percentile(self.pool.submit(run).result(), 50) * 1000)

    def close(self) -> None:
        self.pool.shutdown()


Latencies = tuple[float, float, int]


def _api(db_url: str, workdir: Path) -> tuple[Latencies, Latencies, tuple[float, float]]:
    import httpx

    from central.auth import issue_token
    from central.workflow import Actor
    from gridwatch.broker import CENTRAL_ACL, BrokerUser, Mosquitto, free_port
    from gridwatch.contract.enums import UserRole

    key = secrets.token_urlsafe(48)
    port = free_port()
    with Mosquitto(workdir / "broker", users=[BrokerUser("central", "bench", CENTRAL_ACL)]) as broker:
        conf = workdir / "serve.json"
        conf.write_text(
            json.dumps(
                {
                    "secret_key": key,
                    "port": port,
                    "uplink_broker": broker.url("central"),
                    "database_url": db_url,
                    "tsdb_url": f"sqlite:///{workdir / 'tsdb.db'}",
                }
            )
        )
        proc = subprocess.Popen(
            [sys.executable, "-m", "bench.central", "serve", str(conf)],
            cwd=Path(__file__).resolve().parent.parent,
            stdout=subprocess.DEVNULL,
            stderr=(workdir / "serve.log").open("wb"),
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"central did not start:\n{(workdir / 'serve.log').read_text()[-2000:]}")
                time.sleep(0.1)
            token = issue_token(Actor("op-zhang", UserRole.OPERATOR), key, 3600)
            headers = {"Authorization": f"Bearer {token}"}
            check = httpx.get(f"{base}/api/v1/alerts", headers=headers, timeout=10)
            if check.status_code != 200 or len(check.json()["items"]) != 100:
                raise RuntimeError(f"GET /api/v1/alerts answered {check.status_code}: {check.text[:300]}")
            driver = _Driver(headers)
            try:
                driver.steady(f"{base}/healthz", RATE, 1)  # warm-up: every thread's connection open
                health = driver.steady(f"{base}/healthz", RATE, SECONDS / 2)
                alerts = driver.steady(f"{base}/api/v1/alerts", RATE, SECONDS)
                solo = (driver.sequential(f"{base}/api/v1/alerts", 100), driver.sequential(f"{base}/healthz", 100))
            finally:
                driver.close()
        finally:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    return alerts, health, solo


def bench_central() -> list[Row]:
    from bench.run import Row

    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for kind, label, n in (("sqlite", "SQLite", N_TRANSITIONS), ("postgresql", "PostgreSQL", N_TRANSITIONS_PG)):
            batch = transitions(n)
            with fresh_db(kind, work) as ours_url, fresh_db(kind, work) as raw_url:
                ours = _ours(ours_url, batch)
                raw = _raw(raw_url, batch)
            rows.append(
                Row(
                    f"central: alert transitions ingested via CentralService.ingest_alert into {label} "
                    f"({n // 2:,} raised + cleared)",
                    ours,
                    raw,
                    "transitions/s",
                    "raw SQLAlchemy Core inserts of the same rows, 1 txn each",
                )
            )
        with fresh_db("sqlite", work) as url:
            t0 = time.perf_counter()
            bulk_load(url, N_STORED)
            load_s = time.perf_counter() - t0
            (a50, a99, a_err), (h50, h99, h_err), (solo_a, solo_h) = _api(url, work)
    errs = "" if not (a_err or h_err) else f", {a_err} + {h_err} errors"
    for pct, ours_ms, floor_ms in (("p50", a50, h50), ("p99", a99, h99)):
        rows.append(
            Row(
                f"central: GET /api/v1/alerts {pct} at a steady {RATE} req/s for {SECONDS} s, {N_STORED:,} alerts "
                f"in SQLite (bulk-loaded in {load_s:.1f} s; 100 per page; target p99 < 50 ms{errs})",
                ours_ms,
                floor_ms,
                "ms",
                f"GET /healthz {pct}, same server and rate",
                higher_is_better=False,
            )
        )
    rows.append(
        Row(
            "central: GET /api/v1/alerts p50 unloaded (one request at a time; 1000 / this = req/s per worker)",
            solo_a,
            solo_h,
            "ms",
            "GET /healthz p50, one at a time",
            higher_is_better=False,
        )
    )
    return rows


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "serve":
        _serve_main(Path(sys.argv[2]))
    else:
        sys.exit("usage: python -m bench.central serve CONF.json")
