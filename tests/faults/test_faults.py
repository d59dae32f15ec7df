"""Fault injection against the real processes: every alert still reaches central, exactly once.

Each test breaks one thing for a few seconds (the broker, central, an edge, the device traffic,
a device clock, the edge's disk) while alerts with distinct subjects are being raised, then counts
what central's API lists: every expected (rule, subject) has a new alert, no alert id is listed
twice, and the time the system took to recover is printed. Figures are collected in docs/faults.md.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from gridwatch.broker import free_port
from gridwatch.config import SiteConfig
from gridwatch.demo import DemoTree
from tests.conftest import DEMO_SITE
from tests.faults.conftest import (
    Central,
    Player,
    assert_exact,
    bands,
    baseline,
    child,
    wait_for_subjects,
    wait_until,
)

pytestmark = pytest.mark.integration

QUIET = {"positions_hz": 0, "vitals_s": 0}
DOORS = {  # door → controller, for the doors each edge serves
    "edge-w1": {"D-W1-CELL": "acc-w1-cell", "D-W1-YARD": "acc-w1-yard", "D-W1-WORK": "acc-w1-work",
                "D-W1-STAFF": "acc-w1-staff"},
    "edge-w2": {"D-W2-CELL": "acc-w2-cell", "D-W2-YARD": "acc-w2-yard", "D-W2-WORK": "acc-w2-work",
                "D-W2-STAFF": "acc-w2-staff", "D-CTRL": "acc-ctrl"},
}  # fmt: skip


def _status(tree: DemoTree, edge: str, timeout: float = 2.0) -> dict[str, Any]:
    r = httpx.get(tree.edge_status[edge], timeout=timeout)
    r.raise_for_status()
    body: dict[str, Any] = r.json()
    return body


def _w1_bands(site: SiteConfig) -> dict[str, str]:
    grids = {g for g, (area, _g) in site.grid_index().items() if area.id == "ward-1"}
    return {p.band: p.id for p in site.people if p.band and p.grid in grids}


def _dups(central: Central) -> float:
    return central.duplicates().get("alerts", 0.0)


# -- 1 ------------------------------------------------------------------------------------------
def test_broker_restart_mid_stream(system: DemoTree, central: Central, site: SiteConfig) -> None:
    """Falls from all 24 bands, one every 0.2 s; Mosquitto (device and uplink broker) is down 3 s among them."""
    people = bands(site)
    tally = baseline(central, "wristband.fall")
    dups0 = _dups(central)
    steps = [{"at": 0.2 * i, "wristband": {"band": b, "event": "fall"}} for i, b in enumerate(people)]
    scenario = {"name": "falls", "duration_s": 0.2 * len(people) + 0.5, "background": QUIET, "steps": steps}
    with Player(system, site, scenario, "falls") as player:
        time.sleep(1.5)
        system.broker.restart(down_s=3)
        up = time.monotonic()
        player.join()
    recover = wait_for_subjects(central, tally, set(people.values()), 60, system)
    recover_s = time.monotonic() - up
    reconnect = wait_until(
        lambda: all(_status(system, e)["uplink"]["connected"] for e in system.edge_status), 30, system, "uplinks"
    )
    time.sleep(1.0)  # let late redeliveries land before counting
    tally.items = central.alerts(tally.rule)
    dups = _dups(central) - dups0
    print(
        f"\n[broker restart] {len(people)} falls, broker down 3 s: all at central {recover_s:.2f} s after the "
        f"broker came back (waited {recover:.2f} s after the player finished; uplinks up, checked "
        f"{reconnect:.2f} s later); duplicates dropped by central's dedup: {dups:.0f}; after dedup: "
        f"{len(tally.repeated_ids())}"
    )
    assert_exact(tally, set(people.values()))


# -- 2 ------------------------------------------------------------------------------------------
def test_central_sigkill_under_load(system: DemoTree, central: Central, site: SiteConfig) -> None:
    """Central is SIGKILLed for 15 s while positions and vitals stream; SOS from all 24 bands meanwhile."""
    people = bands(site)
    tally = baseline(central, "wristband.sos")
    steps = [{"at": 2.0 + 0.5 * i, "wristband": {"band": b, "event": "sos"}} for i, b in enumerate(people)]
    scenario = {
        "name": "sos under load",
        "duration_s": 18,
        "background": {"positions_hz": 20, "vitals_s": 0.1},
        "steps": steps,
    }
    proc = child(system, "central").proc
    assert proc is not None
    with Player(system, site, scenario, "load") as player:
        time.sleep(1.0)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        killed = time.monotonic()
        time.sleep(15)
        wait_until(lambda: child(system, "central").alive(), 10, system, "the supervisor to restart central")
        restarted = time.monotonic()
        player.join()
    load = player.rate()
    depth_seen = max(sum(_status(system, e)["outbox"]["depth"].values()) for e in system.edge_status)
    recover = wait_for_subjects(central, tally, set(people.values()), 90, system)
    recover_s = time.monotonic() - restarted
    time.sleep(1.0)
    tally.items = central.alerts(tally.rule)
    dups = _dups(central)  # central restarted: its counter covers the backlog replay
    print(
        f"\n[central SIGKILL] down {restarted - killed:.1f} s under {load:.0f} msg/s from the devices; "
        f"{len(people)} SOS raised meanwhile; all at central {recover_s:.2f} s after the restart "
        f"(+{recover:.2f} s after the load ended); edge outbox depth after the load {depth_seen}; duplicates "
        f"dropped by dedup since the restart: {dups:.0f}; after dedup: {len(tally.repeated_ids())}"
    )
    assert load > 200, f"the load was only {load:.0f} msg/s"
    assert_exact(tally, set(people.values()))


# -- 3 ------------------------------------------------------------------------------------------
def test_edge_sigkill_keeps_its_outbox(system: DemoTree, central: Central, site: SiteConfig) -> None:
    """Doors forced and straps opened on ward 1; edge-w1 is SIGKILLed as soon as the first alert is written."""
    w1 = _w1_bands(site)
    doors = DOORS["edge-w1"]
    forced = baseline(central, "access.door_forced")
    straps = baseline(central, "wristband.strap_open")
    sent0 = _status(system, "edge-w1")["alerts"]["sent"]
    steps: list[dict[str, Any]] = [{"at": 0.5, "access": {"door": d, "event": "door_open"}} for d in doors]
    steps += [{"at": 0.5, "wristband": {"band": b, "event": "strap_open"}} for b in w1]
    scenario = {"name": "edge kill", "duration_s": 0.6, "background": QUIET, "steps": steps}
    edge = child(system, "edge edge-w1")
    proc = edge.proc
    assert proc is not None
    with Player(system, site, scenario, "edge-kill") as player:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if _status(system, "edge-w1", timeout=0.5)["alerts"]["sent"] > sent0:
                    break
            time.sleep(0.005)
        started = time.monotonic()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        killed = time.monotonic()
        player.join()
    log_lines = (system.workdir / "logs" / "edge-edge-w1.log").read_text(errors="replace").splitlines()
    raised = {  # what edge-w1 logged as raised before the kill: logged only after the outbox put returned
        (m.group(1), m.group(2))
        for ln in log_lines
        if (m := re.search(r"alert (access\.door_forced|wristband\.strap_open) \S+ active (\S+):", ln))
    }
    outbox = system.workdir / "var" / "edge-w1-outbox.db"
    with contextlib.closing(sqlite3.connect(f"file:{outbox}?mode=ro", uri=True)) as db:
        waiting = db.execute("SELECT COUNT(*) FROM items WHERE lane = 0 AND sent_seq IS NULL").fetchone()[0]
    wait_until(lambda: edge.alive(), 10, system, "the supervisor to restart edge-w1")
    restarted = time.monotonic()
    expected = {(forced.rule, d) for d in doors} | {(straps.rule, p) for p in w1.values()}
    with contextlib.suppress(AssertionError):  # counted and asserted below, with what was lost where
        wait_until(lambda: _arrived(central, (forced, straps)) >= expected, 30, system, "the alerts after the restart")
    recover_s = time.monotonic() - restarted
    time.sleep(1.0)
    got = _arrived(central, (forced, straps))
    print(
        f"\n[edge SIGKILL] edge-w1 killed {killed - started:.3f} s after its /status first counted an alert, "
        f"having raised {len(raised)} of {len(expected)} alerts, {waiting} alert transition(s) still unpublished "
        f"in its outbox; restarted {restarted - killed:.2f} s later; at central {recover_s:.2f} s after the restart: "
        f"{len(got & expected)} of {len(expected)}; missing {sorted(p for _r, p in expected - got)}"
    )
    assert raised <= got, f"alerts raised (in the outbox) before the kill never reached central: {sorted(raised - got)}"
    assert not expected - got, (
        f"{len(expected - got)} alerts lost: their device messages reached edge-w1 before the kill, which raised "
        f"{len(raised)} of them; the rest were never processed after the restart (acknowledged to the broker "
        f"before processing?): missing {sorted(p for _r, p in expected - got)}"
    )
    assert_exact(forced, set(doors))
    assert_exact(straps, set(w1.values()))
    # close the doors and straps again so that later tests start from a quiet site
    tidy = [{"at": 0, "access": {"door": d, "event": "door_closed"}} for d in doors]
    tidy += [{"at": 0, "wristband": {"band": b, "event": "strap_closed"}} for b in w1]
    with Player(system, site, {"name": "tidy", "duration_s": 0.3, "background": QUIET, "steps": tidy}, "tidy") as p:
        p.join()


def _arrived(central: Central, tallies: tuple[Any, ...]) -> set[tuple[str, str]]:
    """(rule, subject) pairs with a new alert at central, refreshing each tally."""
    out: set[tuple[str, str]] = set()
    for tally in tallies:
        items = central.try_alerts(tally.rule)
        if items is not None:
            tally.items = items
        out |= {(tally.rule, s) for s in tally.subjects()}
    return out


# -- 4 ------------------------------------------------------------------------------------------
def test_flood_of_duplicates_and_garbage(system: DemoTree, central: Central, site: SiteConfig) -> None:
    """15 s of every message sent twice, 10% garbage, 5% reordered, positions at 20 Hz and vitals at 10 Hz;
    door controllers go offline during it: each offline alert arrives, edges stay up with bounded memory."""
    controllers = {c: e for e, doors in DOORS.items() for c in doors.values()}
    offline = baseline(central, "device.offline")
    dead0 = {e: _status(system, e)["dead_letters"]["total"] for e in system.edge_status}
    msgs0 = {e: _status(system, e)["ingest"]["messages"] for e in system.edge_status}
    faults = {"seconds": 15, "duplicate_rate": 1.0, "malformed_rate": 0.1, "reorder_rate": 0.05}
    steps: list[dict[str, Any]] = [{"at": 0, "faults": faults}]
    steps += [{"at": 2 + i, "device": {"id": c, "online": False}} for i, c in enumerate(sorted(controllers))]
    scenario = {
        "name": "flood",
        "duration_s": 15,
        "background": {"positions_hz": 20, "vitals_s": 0.1, "seed": 11},
        "steps": steps,
    }
    procs = {e: psutil.Process(child(system, f"edge {e}").proc.pid) for e in system.edge_status}
    rss_peak = dict.fromkeys(procs, 0)
    slowest = 0.0
    with Player(system, site, scenario, "flood") as player:
        while player.thread.is_alive():
            for e, p in procs.items():
                rss_peak[e] = max(rss_peak[e], p.memory_info().rss)
                t0 = time.monotonic()
                _status(system, e, timeout=5)  # raises if the edge stops answering
                slowest = max(slowest, time.monotonic() - t0)
            time.sleep(0.5)
        player.join()
    load = player.rate()
    recover = wait_for_subjects(central, offline, set(controllers), 60, system)
    time.sleep(1.0)
    offline.items = central.alerts(offline.rule)
    status = {e: _status(system, e) for e in system.edge_status}
    dead = {e: status[e]["dead_letters"]["total"] - dead0[e] for e in status}
    msgs = {e: status[e]["ingest"]["messages"] - msgs0[e] for e in status}
    reasons = {e: status[e]["dead_letters"]["by_reason"] for e in status}
    for e, p in procs.items():
        rss_peak[e] = max(rss_peak[e], p.memory_info().rss)
    mb = {e: round(v / 2**20, 1) for e, v in rss_peak.items()}
    print(
        f"\n[flood] {player.player.published} messages in {player.ended - player.started:.1f} s = {load:.0f} msg/s; "
        f"edges received {msgs}; dead letters {dead} {reasons}; peak edge RSS (MB) {mb}; slowest /status "
        f"{slowest * 1000:.0f} ms; {len(controllers)} offline alerts all at central {recover:.2f} s after the "
        f"flood; alert ids listed twice: {len(offline.repeated_ids())}"
    )
    for e, p in procs.items():
        assert p.is_running() and p.status() != psutil.STATUS_ZOMBIE, f"{e} died in the flood"
    assert all(n > 0 for n in dead.values()), f"garbage was sent but dead letters did not count it: {dead}"
    assert all(v < 500 for v in mb.values()), f"edge memory not bounded: {mb} MB"
    assert_exact(offline, set(controllers))
    back = [{"at": 0, "device": {"id": c, "online": True}} for c in sorted(controllers)]
    with Player(system, site, {"name": "back", "duration_s": 0.3, "background": QUIET, "steps": back}, "back") as p:
        p.join()


# -- 5 ------------------------------------------------------------------------------------------
def test_clock_skew_on_one_detector(system: DemoTree, central: Central, site: SiteConfig) -> None:
    """ir-n-01's clock is an hour ahead; its beam break still raises perimeter.intrusion, stamped when received."""
    tally = baseline(central, "perimeter.intrusion")
    steps = [
        {"at": 0, "faults": {"device": "ir-n-01", "seconds": 5, "clock_skew_s": 3600}},
        {"at": 0.5, "perimeter": {"detector": "ir-n-01", "beam": 1, "state": "alarm"}},
    ]
    with Player(system, site, {"name": "skew", "duration_s": 1, "background": QUIET, "steps": steps}, "skew") as p:
        p.join()
        sent = datetime.now(UTC)
    took = wait_for_subjects(central, tally, {"perim-north"}, 15, system)
    assert_exact(tally, {"perim-north"})
    alert = tally.new[0]
    first_seen = datetime.fromisoformat(alert["first_seen"].replace("Z", "+00:00"))
    off = (first_seen - sent).total_seconds()
    print(
        f"\n[clock skew] device clock +3600 s: alert at central after {took:.2f} s, first_seen {off:+.2f} s "
        f"from the wall clock at publish"
    )
    assert abs(off) < 30, f"the alert carries the device's skewed time ({alert['first_seen']}), not receive time"


# -- 6 ------------------------------------------------------------------------------------------
def _fill(path: Path) -> int:
    """Write zeros into `path` until the filesystem is full; returns bytes written."""
    written = 0
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for size in (65536, 4096, 512, 1):
            with contextlib.suppress(OSError):
                while True:
                    written += os.write(fd, b"\0" * size)
    finally:
        os.close(fd)
    return written


@pytest.fixture
def tiny_var(tmp_path: Path) -> Any:
    """`tmp_path/var` as a 2 MB tmpfs (the demo config's outbox path is `var/edge-w1-outbox.db`)."""
    var = tmp_path / "var"
    var.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(var)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.fail(f"cannot mount a 2 MB tmpfs for the disk-full test: {r.stderr.strip()}", pytrace=False)
    try:
        yield var
    finally:
        subprocess.run(["umount", "-l", str(var)], check=False)


def test_disk_full_outbox(system: DemoTree, central: Central, site: SiteConfig, tiny_var: Path) -> None:
    """edge-w1 with its outbox on a full 2 MB filesystem: it keeps running, says why, and recovers."""
    w1 = sorted(_w1_bands(site).items())
    ok_before, during, after = w1[:2], w1[2:6], w1[6:10]
    falls = baseline(central, "wristband.fall")
    tree_edge = child(system, "edge edge-w1")
    tree_edge.stop()  # the demo's edge-w1 would share our MQTT client ids
    workdir = tiny_var.parent
    status_port = free_port()
    status_url = f"http://127.0.0.1:{status_port}/status"
    log_path = workdir / "edge-w1.log"
    env = {
        **os.environ,
        **child(system, "edge edge-w1").env,
        "GRIDWATCH_DEVICE_BROKER": system.broker.url("edge-w1"),
        "GRIDWATCH_UPLINK_BROKER": system.broker.url("edge-w1"),
    }
    argv = [sys.executable, "-m", "gridwatch.cli", "edge", "run", "--config", str(DEMO_SITE), "--edge", "edge-w1",
            "--status-bind", f"127.0.0.1:{status_port}"]  # fmt: skip
    proc = subprocess.Popen(argv, env=env, cwd=workdir, stdout=log_path.open("ab"), stderr=subprocess.STDOUT)
    try:

        def status() -> dict[str, Any] | None:
            try:
                body: dict[str, Any] = httpx.get(status_url, timeout=2).json()
                return body
            except httpx.HTTPError:
                return None

        def fall(band_people: list[tuple[str, str]], name: str) -> None:
            steps = [{"at": 0.1 * i, "wristband": {"band": b, "event": "fall"}} for i, (b, _) in enumerate(band_people)]
            scenario = {"name": name, "duration_s": 0.1 * len(steps) + 0.2, "background": QUIET, "steps": steps}
            with Player(system, site, scenario, name) as player:
                player.join()

        wait_until(lambda: (s := status()) is not None and s["uplink"]["connected"] and s["ingest"]["connected"],
                   30, None, "our edge-w1 to connect")  # fmt: skip
        fall(ok_before, "disk-ok")
        wait_for_subjects(central, falls, {p for _b, p in ok_before}, 20, system)

        filled = _fill(tiny_var / "filler")
        fall(during, "disk-full")
        time.sleep(5)
        alive_full = proc.poll() is None
        s_full = status()
        log_full = log_path.read_text(errors="replace")
        clear = [ln for ln in log_full.splitlines() if "full" in ln.lower() or "no space" in ln.lower()]

        (tiny_var / "filler").unlink()
        freed = time.monotonic()
        exit_code = proc.poll()
        if exit_code is not None:  # it crashed: restart it as the demo's supervisor would, to see what survives
            proc = subprocess.Popen(argv, env=env, cwd=workdir, stdout=log_path.open("ab"), stderr=subprocess.STDOUT)
            wait_until(lambda: (s := status()) is not None and s["uplink"]["connected"], 30, None, "edge-w1 again")
        fall(after, "disk-freed")
        expected_after = {p for _b, p in after}
        flowed = None
        with contextlib.suppress(AssertionError):
            flowed = wait_for_subjects(central, falls, expected_after, 20, system)
        recover_s = time.monotonic() - freed
        got = set(falls.subjects())
        lost_during = sorted({p for _b, p in during} - got)
        print(
            f"\n[disk full] filled the 2 MB outbox filesystem with {filled / 2**20:.2f} MB; edge alive while full: "
            f"{alive_full} (exit code {exit_code}), /status answered: {s_full is not None}; log lines naming "
            f"the problem: {len(clear)} (first: {clear[0].strip() if clear else '-'}); after freeing space"
            f"{' and restarting it' if exit_code is not None else ''}, "
            f"new falls at central: {flowed is not None} ({recover_s:.2f} s); falls raised while full that "
            f"never arrived: {lost_during}"
        )
        assert alive_full, f"edge-w1 exited ({exit_code}) when its outbox disk filled:\n{log_full[-2500:]}"
        assert s_full is not None, "edge-w1's /status did not answer while its disk was full"
        assert clear, f"edge-w1 did not say its disk is full:\n{log_full[-2500:]}"
        assert flowed is not None, f"alerts did not flow again after space was freed: missing {expected_after - got}"
        assert not lost_during, f"falls raised while the outbox disk was full were lost: {lost_during}"
        assert_exact(falls, {p for _b, p in ok_before + during + after})
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        tree_edge.start()


# -- 7 ------------------------------------------------------------------------------------------
def _resent(system: DemoTree) -> int:
    return sum(
        s["outbox"]["resent_lost"] + s["outbox"]["resent_probes"]
        for s in (_status(system, e) for e in system.edge_status)
    )


def test_uplink_broker_crash_after_its_puback(system: DemoTree, central: Central, site: SiteConfig) -> None:
    """Central is stopped while falls from all 24 bands are raised, sent and PUBACKed into its queue; then
    Mosquitto is SIGKILLed before it saved them. The edges kept them until central's confirmation: every fall
    arrives, once."""

    def confirming(edge: str) -> bool:
        try:  # the edge may still be starting (the disk-full test restarts edge-w1 as it ends)
            return bool(_status(system, edge)["outbox"]["confirmations"])
        except httpx.HTTPError:
            return False

    wait_until(lambda: all(confirming(e) for e in system.edge_status), 60, system, "every edge to see central confirm")
    # nothing queued from here on is saved before the crash (the default saves every second), so the
    # broker certainly loses what it acknowledged: the test cannot pass by luck of the autosave timing
    system.broker.autosave_s = 3600
    system.broker.restart()
    uplinks = system.edge_status
    wait_until(lambda: all(_status(system, e)["uplink"]["connected"] for e in uplinks), 30, system, "uplinks")
    people = bands(site)
    # a fall still active at an edge from an earlier test would absorb this test's fall of the same person
    wait_until(
        lambda: not any(_status(system, e)["alerts"]["active_by_rule"].get("wristband.fall") for e in uplinks),
        60,
        system,
        "earlier falls to clear at the edges",
    )
    tally = baseline(central, "wristband.fall")
    resent0 = _resent(system)

    def awaiting() -> int:
        return sum(_status(system, e)["outbox"]["awaiting_confirmation"]["alerts"] for e in uplinks)

    awaiting0 = awaiting()
    steps = [{"at": 0.1 * i, "wristband": {"band": b, "event": "fall"}} for i, b in enumerate(people)]
    scenario = {"name": "falls", "duration_s": 0.1 * len(people) + 0.3, "background": QUIET, "steps": steps}
    central_proc = child(system, "central")
    central_proc.stop()  # its persistent session queues the falls, in the broker's memory only
    try:
        with Player(system, site, scenario, "crash-falls") as player:
            player.join()
        wait_until(lambda: awaiting() - awaiting0 >= len(people), 20, system, "every fall PUBACKed by the broker")
        held = awaiting()
        system.broker.kill()
    finally:
        system.broker.autosave_s = 1
        system.broker.start()
        central_proc.start()
    up = time.monotonic()
    # the falls clear on their own about 10 s later; those transitions alone would list every fall at
    # central: wait for each alert's *active* transition, the one the broker lost
    wait_for_subjects(central, tally, set(people.values()), 60, system)

    def raised() -> set[str]:
        return {a["subject"]["id"] for a in tally.new if "active" in _conditions(central, a["id"])}

    recover = wait_until(lambda: raised() == set(people.values()), 120, system, "every fall's active transition")
    time.sleep(1.0)
    tally.items = central.alerts(tally.rule)
    resent = _resent(system) - resent0
    print(
        f"\n[uplink broker crash] {held} alert transitions PUBACKed by the broker and held by the edges for "
        f"confirmation when it was SIGKILLed; every fall's active transition at central {time.monotonic() - up:.2f} s "
        f"after broker and central came back (waited {recover:.2f} s for the last); items the edges sent again: "
        f"{resent}; after dedup: {len(tally.repeated_ids())} repeated"
    )
    # every fall was lost by the broker: each came again, the newest per edge as a probe, the rest overtaken
    assert resent >= len(people), f"the broker lost the falls, yet the edges sent only {resent} items again"
    assert_exact(tally, set(people.values()))
    reopened = sorted(a["subject"]["id"] for a in tally.new if a["condition"] != "cleared")
    assert not reopened, f"a late active transition reopened falls that had cleared: {reopened}"


def _conditions(central: Central, alert_id: str) -> set[str]:
    r = httpx.get(
        f"{central.tree.central_url}/api/v1/alerts/{alert_id}",
        headers={"Authorization": f"Bearer {central.token()}"},
        timeout=10,
    )
    r.raise_for_status()
    return {t["condition"] for t in r.json()["transitions"]}
