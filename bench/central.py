"""Central's alert store and API, each next to its raw floor, in the same run.

1. Alert transitions ingested per second through `CentralService.ingest_alert` (one transaction each,
   exactly-once bookkeeping, history, events) into SQLite and into a fresh PostgreSQL database, vs
   raw SQLAlchemy Core inserts of the same rows (received, alert, workflow entry, transition; the
   clear updates the alert), one transaction per transition too, into another fresh database.
2. `GET /api/v1/alerts` p50/p99 under an open-loop load of 200 requests/s for 20 s with 100,000
   alerts stored (bulk-loaded with Core inserts into the ORM's tables): the real app under uvicorn
   in a subprocess, the client (asyncio + httpx) in a process of its own so its CPU is not the
   server's; each request is sent at its scheduled time whether or not earlier ones were answered
   and its latency counts from that time (no coordinated omission). The floor is `GET /healthz` of
   the same server at the same rate. Measured for one process (role "all"), then for two `--role
   api` replicas on the same database with the client alternating between them (docs/scale-out.md):
   the issue asks for 200 req/s, and this says what one process and two give on this machine.

PostgreSQL is the machine's (127.0.0.1:5432, user postgres, trust auth), as the tests use it.
"""

from __future__ import annotations

import gc
import json
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
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
SECONDS = 20
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
    """n alerts of mixed rules, levels, workflow states and grids over the last 30 days, Core inserts.

    Unacknowledged (`new`) alerts are stored as central's escalation timer would have left them by
    now (escalated to the area supervisor, then the command centre, on the level's schedule).
    Loaded without that, the server's timer spent the whole measurement escalating ~20,000 stale
    alerts, one transaction and audit entry each: a full core busy in the background that no
    running site has (the earlier figures of this benchmark were taken that way).
    """
    from sqlalchemy import insert

    from central.store.db import open_database
    from central.store.models import Alert
    from central.workflow import escalation_target
    from gridwatch.config.models import SiteConfig
    from gridwatch.contract.enums import Level

    escalation = SiteConfig.model_validate(SITE).central.escalation
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
            workflow, level, first_seen = workflows[(i // 16) % 5], levels[(i // 4) % 3], ts - timedelta(seconds=30)
            step, escalated_to, escalated_at, last_change = 0, None, None, ts
            delay = timedelta(seconds=escalation.after(Level(level)))
            while workflow == "new" and step < 2 and now >= first_seen + delay * (step + 1):
                escalated_to = escalation_target(step, f"area-{a}")
                escalated_at = first_seen + delay * (step + 1)
                last_change = max(last_change, escalated_at)
                step = 2 if escalated_to == "command" else step + 1
            rows.append(
                {
                    "id": f"bulk-{i:07d}",
                    "rule": rules[i % 4],
                    "level": level,
                    "condition": "cleared" if i % 3 else "active",
                    "workflow": workflow,
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
                    "first_seen": first_seen,
                    "edge_ts": ts,
                    "last_change": last_change,
                    "escalated_to": escalated_to,
                    "escalation_step": step,
                    "escalated_at": escalated_at,
                    "resolution": None,
                    "officer": None,
                }
            )
        with db.engine.begin() as conn:
            conn.execute(insert(Alert), rows)
    db.close()


# -- the API server and its load (each in its own process) ----------------------------------------
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
        role=conf.get("role", "all"),
        static_dir=None,
    )
    app = create_app(settings)
    gc.freeze()  # as `gridwatch central run` does (central/cli.py)
    uvicorn.run(app, host="127.0.0.1", port=conf["port"], log_level="error", access_log=False)


class _Http:
    """Keep-alive HTTP/1.1 GETs over asyncio streams, a pool of idle connections per server.

    The load client is kept this small on purpose: httpx's async pool slows down sharply with
    hundreds of requests in flight (the client, not the server, became the bottleneck).
    """

    def __init__(self, base: str, headers: dict[str, str]) -> None:
        host, port = base.removeprefix("http://").rsplit(":", 1)
        self.host, self.port = host, int(port)
        self.extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self.idle: list[tuple[Any, Any]] = []

    async def get(self, path: str) -> int:
        import asyncio

        if self.idle:
            try:
                return await self._get(self.idle.pop(), path)
            except asyncio.IncompleteReadError as exc:
                if exc.partial:
                    raise
                # the server closed this keep-alive connection while it sat idle (uvicorn: after
                # 5 s): nothing was answered, so send it again on a new one, as HTTP clients do
        return await self._get(await asyncio.open_connection(self.host, self.port), path)

    async def _get(self, conn: tuple[Any, Any], path: str) -> int:
        reader, writer = conn
        try:
            writer.write(f"GET {path} HTTP/1.1\r\nHost: {self.host}\r\n{self.extra}\r\n".encode())
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            status = int(head[9:12])
            length = next(
                int(line.split(":", 1)[1]) for line in head.split("\r\n") if line.lower().startswith("content-length:")
            )
            await reader.readexactly(length)
        except BaseException:
            writer.close()
            raise
        self.idle.append(conn)
        return status


def _load_main(conf_path: Path) -> None:
    """Open-loop GETs at a fixed rate (round robin over `bases`), printed as JSON: the client of `_api`.

    Request i is sent at t0 + i/rate whether or not earlier ones have been answered, and its latency
    counts from that scheduled time, so a stalled server shows as latency (no coordinated omission).
    """
    import asyncio

    conf = json.loads(conf_path.read_text())
    rate, seconds, path = float(conf["rate"]), float(conf["seconds"]), conf["path"]

    async def main() -> dict[str, Any]:
        clients = [_Http(b, conf["headers"]) for b in conf["bases"]]
        loop = asyncio.get_running_loop()
        if conf["sequential"]:
            out = []
            for i in range(int(conf["sequential"])):
                t0 = loop.time()
                await clients[i % len(clients)].get(path)
                out.append(loop.time() - t0)
            return {"p50_ms": float(np.percentile(out, 50) * 1000)}
        n = int(rate * seconds)
        lat = [0.0] * n
        errors = 0

        kinds: dict[str, int] = {}

        async def one(i: int, due: float) -> None:
            nonlocal errors
            try:
                status = await clients[i % len(clients)].get(path)
                kind = "" if status == 200 else f"HTTP {status}"
            except (OSError, asyncio.IncompleteReadError, ValueError, StopIteration) as exc:
                kind = type(exc).__name__
            if kind:
                errors += 1
                kinds[kind] = kinds.get(kind, 0) + 1
            lat[i] = loop.time() - due

        await asyncio.gather(*(clients[i % len(clients)].get(path) for i in range(16)))  # open connections
        cpu0 = time.process_time()
        t0 = loop.time() + 0.05
        tasks = []
        for i in range(n):
            due = t0 + i / rate
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i, due)))
        sent = loop.time() - t0
        await asyncio.gather(*tasks)
        arr = np.array(lat) * 1000
        return {
            "p50_ms": float(np.percentile(arr, 50)),
            "p99_ms": float(np.percentile(arr, 99)),
            "max_ms": float(arr.max()),
            "sent_per_s": n / sent,
            "answered_per_s": n / (loop.time() - t0),
            "errors": errors,
            "error_kinds": kinds,
            "client_cpu_ms_per_request": (time.process_time() - cpu0) / n * 1000,
        }

    print(json.dumps(asyncio.run(main())))


def _drive(workdir: Path, conf: dict[str, Any], servers: list[Any]) -> dict[str, Any]:
    """Run `_load_main` in a subprocess (its CPU is not the servers'); adds the servers' CPU per request."""
    path = workdir / f"load-{secrets.token_hex(3)}.json"
    path.write_text(json.dumps(conf))
    before = sum(s.cpu_times().user + s.cpu_times().system for s in servers)
    out = subprocess.run(
        [sys.executable, "-m", "bench.central", "load", str(path)],
        cwd=Path(__file__).resolve().parent.parent,
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, Any] = json.loads(out.stdout)
    after = sum(s.cpu_times().user + s.cpu_times().system for s in servers)
    n = conf["sequential"] or int(conf["rate"] * conf["seconds"])
    result["server_cpu_ms_per_request"] = (after - before) / n * 1000
    return result


def _api(db_url: str, workdir: Path, replicas: int) -> dict[str, dict[str, Any]]:
    """`replicas` central processes on one database (role "all", or "api" replicas when more than one)."""
    import httpx
    import psutil

    from central.auth import issue_token
    from central.workflow import Actor
    from gridwatch.broker import CENTRAL_ACL, BrokerUser, Mosquitto, free_port
    from gridwatch.contract.enums import UserRole

    key = secrets.token_urlsafe(48)
    results: dict[str, dict[str, Any]] = {}
    with Mosquitto(workdir / f"broker-{replicas}", users=[BrokerUser("central", "bench", CENTRAL_ACL)]) as broker:
        procs: list[subprocess.Popen[bytes]] = []
        bases = []
        try:
            for k in range(replicas):
                port = free_port()
                conf = workdir / f"serve-{replicas}-{k}.json"
                conf.write_text(
                    json.dumps(
                        {
                            "secret_key": key,
                            "port": port,
                            "uplink_broker": broker.url("central"),
                            "database_url": db_url,
                            "tsdb_url": f"sqlite:///{workdir / f'tsdb-{replicas}-{k}.db'}",
                            "role": "all" if replicas == 1 else "api",
                        }
                    )
                )
                log = workdir / f"serve-{replicas}-{k}.log"
                procs.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "bench.central", "serve", str(conf)],
                        cwd=Path(__file__).resolve().parent.parent,
                        stdout=subprocess.DEVNULL,
                        stderr=log.open("wb"),
                    )
                )
                bases.append(f"http://127.0.0.1:{port}")
            for proc, base in zip(procs, bases, strict=True):
                deadline = time.monotonic() + 60
                while True:
                    try:
                        if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                            break
                    except httpx.HTTPError:
                        pass
                    if proc.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"central did not start:\n{list(workdir.glob('serve-*.log'))}")
                    time.sleep(0.1)
            token = issue_token(Actor("op-zhang", UserRole.OPERATOR), key, 3600)
            headers = {"Authorization": f"Bearer {token}"}
            for base in bases:
                check = httpx.get(f"{base}/api/v1/alerts", headers=headers, timeout=10)
                if check.status_code != 200 or len(check.json()["items"]) != 100:
                    raise RuntimeError(f"GET /api/v1/alerts answered {check.status_code}: {check.text[:300]}")
            servers = [psutil.Process(p.pid) for p in procs]

            def load(path: str, seconds: float, sequential: int = 0) -> dict[str, Any]:
                conf = {"bases": bases, "headers": headers, "rate": RATE, "seconds": seconds, "path": path}
                return _drive(workdir, {**conf, "sequential": sequential}, servers)

            results["healthz"] = load("/healthz", SECONDS / 2)
            results["alerts"] = load("/api/v1/alerts", SECONDS)
            if replicas == 1:
                results["solo_alerts"] = load("/api/v1/alerts", 0, sequential=200)
                results["solo_healthz"] = load("/healthz", 0, sequential=200)
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
    return results


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
            one = _api(url, work, 1)
            two = _api(url, work, 2)
    from bench.run import DETAILS

    DETAILS["central_api"] = {"one_process": one, "two_api_replicas": two}
    for label, res in (("1 process", one), ("2 `--role api` replicas, client round robin", two)):
        a, h = res["alerts"], res["healthz"]
        errs = f", {a['errors']} + {h['errors']} errors" if a["errors"] or h["errors"] else ""
        what = (
            f"central: GET /api/v1/alerts {{pct}} open loop at {RATE} req/s for {SECONDS} s, {N_STORED:,} alerts in "
            f"SQLite, 100 per page, {label} (answered {a['answered_per_s']:.0f} req/s; server CPU "
            f"{a['server_cpu_ms_per_request']:.1f} ms/req; target p99 < 50 ms{errs})"
        )
        for pct in ("p50", "p99"):
            rows.append(
                Row(
                    what.format(pct=pct),
                    a[f"{pct}_ms"],
                    h[f"{pct}_ms"],
                    "ms",
                    f"GET /healthz {pct}, same servers and rate",
                    higher_is_better=False,
                )
            )
    rows.append(
        Row(
            f"central: GET /api/v1/alerts p50 one request at a time (1000 / this = req/s per process; bulk load "
            f"{load_s:.1f} s)",
            one["solo_alerts"]["p50_ms"],
            one["solo_healthz"]["p50_ms"],
            "ms",
            "GET /healthz p50, one at a time",
            higher_is_better=False,
        )
    )
    return rows


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "serve":
        _serve_main(Path(sys.argv[2]))
    elif len(sys.argv) == 3 and sys.argv[1] == "load":
        _load_main(Path(sys.argv[2]))
    else:
        sys.exit("usage: python -m bench.central serve|load CONF.json")
