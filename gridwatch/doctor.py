"""`gridwatch doctor`: check a site's config, brokers, cameras, central, time-series store,
clocks and outbox disk, and say what to fix. Exit code 0 only when every check passes."""

from __future__ import annotations

import asyncio
import os
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Annotated

import httpx
import typer

from gridwatch.config import BrokerUrl, ConfigError, SiteConfig, load_site
from gridwatch.config.models import Edge

CLOCK_TOLERANCE_S = 2.0
STATUS_LISTEN_S = 1.5


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""


def env_or(name: str, value: str) -> str:
    return os.environ.get(name) or value


# -- brokers --------------------------------------------------------------------------------
async def _broker(url: str, who: str, listen: list[str] | None) -> tuple[bool, str, dict[str, str]]:
    import aiomqtt

    from gridwatch.mqtt import async_client, describe_connect_error

    broker = BrokerUrl.parse(url)
    seen: dict[str, str] = {}
    try:
        async with async_client(broker, f"gridwatch-doctor-{os.getpid()}-{who}") as client:
            if listen:
                for topic in listen:
                    await client.subscribe(topic, qos=0)
                deadline = time.monotonic() + STATUS_LISTEN_S
                try:
                    async with asyncio.timeout(STATUS_LISTEN_S):
                        async for message in client.messages:
                            seen[str(message.topic)] = bytes(message.payload).decode(errors="replace").strip()
                            if time.monotonic() > deadline:
                                break
                except TimeoutError:
                    pass
        return True, f"connected to {broker.redacted()}", seen
    except aiomqtt.MqttError as exc:
        return False, describe_connect_error(exc, broker, who), seen


def check_brokers(site: SiteConfig, edge: Edge) -> list[Check]:
    import drivers  # the CLI layer may reach down; the contract package itself does not

    out: list[Check] = []
    device_url = env_or("GRIDWATCH_DEVICE_BROKER", edge.device_broker)
    uplink_url = env_or("GRIDWATCH_UPLINK_BROKER", edge.uplink_broker)
    devices = [d for d in site.devices if d.id in site.edge_device_ids(edge)]
    topics = {t for d in devices for t in drivers.device_topics(site.site.id, d)}
    status_topics = sorted(t for t in topics if t.endswith("/status"))
    ok, detail, seen = asyncio.run(_broker(device_url, edge.id, status_topics[:200]))
    fix = "check GRIDWATCH_DEVICE_BROKER or edges[].device_broker, and the broker's password file"
    out.append(Check(f"device broker ({edge.id})", ok, detail, "" if ok else fix))
    if ok and devices:
        online = {t.rsplit("/", 2)[-2] for t, v in seen.items() if v.strip('"') == "online"}
        offline = {t.rsplit("/", 2)[-2] for t, v in seen.items() if v.strip('"') == "offline"}
        silent = sorted(d.id for d in devices if d.id not in online | offline and d.family != "camera")
        listed = [d for d in devices if d.family != "camera"]
        ok_dev = not offline and not silent
        detail = f"{len(online)}/{len(listed)} devices report online"
        if offline:
            detail += f"; offline: {', '.join(sorted(offline)[:8])}"
        if silent:
            detail += f"; no status yet: {', '.join(silent[:8])}{' …' if len(silent) > 8 else ''}"
        out.append(Check(f"device status ({edge.id})", ok_dev, detail,
                         "" if ok_dev else "power-cycle or re-wire the devices named; check their topic in the config"))
    ok, detail, _ = asyncio.run(_broker(uplink_url, edge.id, None))
    out.append(Check(f"uplink broker ({edge.id})", ok, detail,
                     "" if ok else "check GRIDWATCH_UPLINK_BROKER or edges[].uplink_broker and the edge's credentials"))
    return out


# -- cameras --------------------------------------------------------------------------------
def _read_frame(url: str, timeout_s: float) -> tuple[bool, str]:
    os.environ.setdefault(
        "OPENCV_FFMPEG_CAPTURE_OPTIONS", "fflags;nobuffer|flags;low_delay|analyzeduration;100000|probesize;32768"
    )
    import cv2

    result: list[tuple[bool, str]] = []

    def worker() -> None:
        cap = cv2.VideoCapture(url, cv2.CAP_FFMPEG)
        try:
            if not cap.isOpened():
                result.append((False, "cannot open the stream"))
                return
            ok, frame = cap.read()
            if not ok or frame is None:
                result.append((False, "opened, but no frame arrived"))
            else:
                result.append((True, f"frame {frame.shape[1]}×{frame.shape[0]}"))
        finally:
            cap.release()

    thread = threading.Thread(target=worker, daemon=True)
    started = time.monotonic()
    thread.start()
    thread.join(timeout_s)
    if not result:
        return False, f"no frame within {timeout_s:.0f} s"
    ok, detail = result[0]
    return ok, f"{detail} in {time.monotonic() - started:.2f} s"


def check_cameras(site: SiteConfig, edge: Edge, timeout_s: float) -> list[Check]:
    out = []
    for device in site.devices:
        if device.family != "camera" or device.id not in site.edge_device_ids(edge) or not device.url:
            continue
        ok, detail = _read_frame(device.url, timeout_s)
        out.append(Check(f"camera {device.id}", ok, detail,
                         "" if ok else f"check the camera is powered and {device.url.split('@')[-1]} is reachable"))
    return out


# -- central, store, clocks, disk ------------------------------------------------------------
def check_central(central_url: str) -> list[Check]:
    out = []
    try:
        started = datetime.now(UTC)
        response = httpx.get(f"{central_url}/readyz", timeout=5)
    except httpx.HTTPError as exc:
        return [Check("central", False, f"{central_url} unreachable: {exc}",
                      "start `gridwatch central run` or pass --central URL")]
    ok = response.status_code == 200
    detail = "ready" if ok else f"not ready: {response.text[:200]}"
    out.append(Check("central", ok, f"{central_url}: {detail}", "" if ok else "see the named dependency below"))
    if "date" in response.headers:
        theirs = parsedate_to_datetime(response.headers["date"])
        skew = abs((theirs - started).total_seconds())
        ok_clock = skew <= CLOCK_TOLERANCE_S + 1  # the Date header has 1 s resolution
        out.append(Check("clock vs central", ok_clock, f"off by {skew:.1f} s",
                         "" if ok_clock else "enable NTP (timedatectl set-ntp true) on this box and on central"))
    return out


def check_tsdb(site: SiteConfig) -> Check:
    url = env_or("GRIDWATCH_TSDB_URL", site.central.tsdb.url)
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        folder = path.parent if str(path.parent) else Path(".")
        ok = os.access(folder if folder.exists() else folder.parent if folder.parent.exists() else Path("."), os.W_OK)
        return Check("time-series store", ok, f"embedded SQLite at {path}",
                     "" if ok else f"make {folder} writable for the central user")
    for probe in ("/health", "/ping"):
        try:
            response = httpx.get(url.rstrip("/") + probe, timeout=5)
        except httpx.HTTPError as exc:
            return Check("time-series store", False, f"{url} unreachable: {exc}",
                         "start VictoriaMetrics/InfluxDB or fix GRIDWATCH_TSDB_URL")
        if response.status_code in (200, 204):
            return Check("time-series store", True, f"{url}{probe} answered {response.status_code}")
    return Check("time-series store", False, f"{url} answered {response.status_code}", "check the URL and token")


def check_outbox(edge: Edge) -> Check:
    path = Path(edge.outbox)
    folder = path.parent.resolve()
    existing = folder
    while not existing.exists():
        existing = existing.parent
    if not os.access(existing, os.W_OK):
        return Check(f"outbox disk ({edge.id})", False, f"{folder} is not writable", f"chown the folder of {path}")
    free_mb = shutil.disk_usage(existing).free / 1e6
    need = edge.outbox_max_mb
    ok = free_mb >= need
    return Check(f"outbox disk ({edge.id})", ok, f"{free_mb:,.0f} MB free at {existing}, cap {need:,.0f} MB",
                 "" if ok else "free disk space or lower edges[].outbox_max_mb")


def run_checks(site: SiteConfig, edges: list[Edge], central_url: str | None, camera_timeout_s: float,
               progress: Callable[[str], None] = lambda _: None) -> list[Check]:
    checks: list[Check] = []
    for edge in edges:
        progress(f"brokers of {edge.id}")
        checks += check_brokers(site, edge)
        progress(f"cameras of {edge.id}")
        checks += check_cameras(site, edge, camera_timeout_s)
        checks.append(check_outbox(edge))
    if central_url:
        progress("central")
        checks += check_central(central_url)
    checks.append(check_tsdb(site))
    return checks


def register(app: typer.Typer) -> None:
    @app.command()
    def doctor(
        config: Annotated[Path | None, typer.Option("--config", help="Site YAML (or GRIDWATCH_CONFIG)")] = None,
        edge: Annotated[str | None, typer.Option("--edge", help="Check only this edge")] = None,
        central: Annotated[str | None, typer.Option("--central", help="Central URL (default: central.bind)")] = None,
        camera_timeout: Annotated[float, typer.Option(help="Seconds to wait for a camera frame")] = 8.0,
    ) -> None:
        """Check config, brokers, cameras, central, time-series store, clocks and disk; say what to fix."""
        from rich.console import Console
        from rich.table import Table

        console = Console()
        path = config or (Path(os.environ["GRIDWATCH_CONFIG"]) if os.environ.get("GRIDWATCH_CONFIG") else None)
        if path is None:
            console.print("[red]✗[/] no config: pass --config FILE or set GRIDWATCH_CONFIG")
            raise typer.Exit(1)
        try:
            site = load_site(path)
        except ConfigError as exc:
            console.print(f"[red]✗ config[/] {path}: {len(exc.problems)} problem(s)")
            for problem in exc.problems:
                console.print(f"  {problem}", markup=False, highlight=False)
            raise typer.Exit(1) from None
        try:
            edges = [site.edge(edge)] if edge else list(site.edges)
        except KeyError as exc:
            console.print(f"[red]✗[/] {exc.args[0]}")
            raise typer.Exit(1) from None
        bind = env_or("GRIDWATCH_CENTRAL_BIND", site.central.bind)
        central_url = central or f"http://{bind}"
        with console.status("checking…") as status:
            checks = [Check("config", True, f"{path}: site '{site.site.id}' valid")]
            checks += run_checks(site, edges, central_url, camera_timeout, lambda s: status.update(f"checking {s}…"))
        table = Table(title=f"gridwatch doctor — {site.site.id}", show_lines=False)
        table.add_column("", width=2)
        table.add_column("check")
        table.add_column("result")
        table.add_column("what to do")
        for item in checks:
            table.add_row("[green]✓[/]" if item.ok else "[red]✗[/]", item.name, item.detail, item.fix)
        console.print(table)
        failed = [c for c in checks if not c.ok]
        console.print(f"{len(checks) - len(failed)} passed, {len(failed)} failed")
        raise typer.Exit(1 if failed else 0)
