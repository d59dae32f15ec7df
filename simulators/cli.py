"""`gridwatch sim`: play a scenario against the device broker, or play it and check central's answers."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.table import Table

from gridwatch.config import ConfigError, SiteConfig, load_site
from simulators.player import CameraControl, MqttPublisher, PlayedStep, ScenarioPlayer
from simulators.scenario import Expect, Scenario, load_scenario
from simulators.sessions import DeviceSessions

app = typer.Typer(help="Hardware simulators and scenarios.", no_args_is_help=True)
log = logging.getLogger("gridwatch.sim")
console = Console(stderr=True)

ConfigOpt = Annotated[Path | None, typer.Option("--config", help="Site config (default $GRIDWATCH_CONFIG)")]
BrokerOpt = Annotated[
    str | None,
    typer.Option("--broker", help="Device broker URL (default $GRIDWATCH_DEVICE_BROKER, else the first edge's)"),
]
SpeedOpt = Annotated[float, typer.Option("--speed", min=0.01, help="Divide step times by this (durations stay real)")]
SeedOpt = Annotated[int | None, typer.Option("--seed", help="Random seed (default: the scenario's)")]
CameraOpt = Annotated[
    str | None,
    typer.Option("--camera-control", help="HOST:PORT of the camera simulator's control socket"),
]
SessionsOpt = Annotated[
    bool,
    typer.Option(
        "--device-sessions/--shared-session",
        help="One broker connection per device carrying its `offline` will (as real devices), "
        "or every status over the player's single connection",
    ),
]


def _fail(problems: ConfigError) -> typer.Exit:
    for problem in problems.problems:
        typer.echo(str(problem), err=True)
    return typer.Exit(1)


def _load(scenario_path: Path, config: Path | None) -> tuple[SiteConfig, Scenario]:
    config_path = config or (Path(os.environ["GRIDWATCH_CONFIG"]) if os.environ.get("GRIDWATCH_CONFIG") else None)
    if config_path is None:
        typer.echo("no site config: give --config FILE or set GRIDWATCH_CONFIG", err=True)
        raise typer.Exit(1)
    try:
        site = load_site(config_path)
        scenario = load_scenario(scenario_path, site)
    except ConfigError as exc:
        raise _fail(exc) from None
    return site, scenario


def _broker(site: SiteConfig, broker: str | None) -> str:
    url = broker or os.environ.get("GRIDWATCH_DEVICE_BROKER") or (site.edges[0].device_broker if site.edges else None)
    if not url:
        typer.echo("no device broker: give --broker URL or set GRIDWATCH_DEVICE_BROKER", err=True)
        raise typer.Exit(1)
    return url


def _camera_control(spec: str | None) -> CameraControl | None:
    spec = spec or os.environ.get("GRIDWATCH_CAMERA_CONTROL")
    if not spec:
        return None
    host, _, port = spec.rpartition(":")
    if not host or not port.isdigit():
        typer.echo(f"--camera-control wants HOST:PORT, not {spec!r}", err=True)
        raise typer.Exit(1)
    from simulators.camera import control

    def drive(camera: str, event: str, seconds: float) -> None:
        try:
            control(host, int(port), camera, event, seconds)
        except OSError as exc:
            log.warning("camera simulator at %s did not take %s for %s: %s", spec, event, camera, exc)

    return drive


def _connect(url: str) -> MqttPublisher:
    publisher = MqttPublisher(url)
    try:
        publisher.connect()
    except (OSError, ConnectionError) as exc:
        typer.echo(f"cannot reach the device broker {publisher.url.redacted()}: {exc}", err=True)
        raise typer.Exit(1) from None
    return publisher


def _sessions(publisher: MqttPublisher, wanted: bool) -> DeviceSessions | None:
    return DeviceSessions(publisher.url, f"gridwatch-sim-{os.getpid()}") if wanted else None


@app.command("run")
def run(
    scenario: Annotated[Path, typer.Argument(help="Scenario YAML file")],
    config: ConfigOpt = None,
    broker: BrokerOpt = None,
    speed: SpeedOpt = 1.0,
    loop: Annotated[bool, typer.Option("--loop", help="Start again at the end, forever")] = False,
    camera_control: CameraOpt = None,
    device_sessions: SessionsOpt = True,
) -> None:
    """Play a scenario against the device broker."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    site, plan = _load(scenario, config)
    publisher = _connect(_broker(site, broker))
    sessions = _sessions(publisher, device_sessions)
    player = ScenarioPlayer(
        site, plan, publisher, speed=speed, camera_control=_camera_control(camera_control), sessions=sessions
    )
    log.info(
        "playing %r (%d steps, %.0f s) against %s", plan.name, len(plan.steps), plan.length_s, publisher.url.redacted()
    )
    try:
        player.run(loop=loop)
    except KeyboardInterrupt:
        pass
    finally:
        publisher.close()
        if sessions is not None:
            sessions.close()
    log.info("done: %d messages published", publisher.sent)


def _seeded(plan: Scenario, seed: int | None) -> Scenario:
    if seed is None:
        return plan
    return plan.model_copy(update={"background": plan.background.model_copy(update={"seed": seed})})


def _run_with_progress(player: ScenarioPlayer, plan: Scenario, speed: float, stop: threading.Event) -> None:
    """Play on a thread; show scenario time and the publish rate as a Rich progress bar."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    worker = threading.Thread(target=player.run, kwargs={"stop": stop}, name="player", daemon=True)
    started = time.monotonic()
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
        console=console,
    ) as progress:
        task = progress.add_task(plan.name, total=plan.length_s, rate="")
        worker.start()
        while worker.is_alive():
            elapsed = time.monotonic() - started
            progress.update(
                task,
                completed=min(plan.length_s, elapsed * speed),
                rate=f"{player.published / max(elapsed, 1e-9):,.0f} msg/s",
            )
            worker.join(0.25)


@app.command("check")
def check(scenario: Annotated[Path, typer.Argument(help="Scenario YAML file")], config: ConfigOpt = None) -> None:
    """Check a scenario file against its site config, as `config validate` does for sites."""
    _site, plan = _load(scenario, config)
    typer.echo(
        f"{scenario}: ok — {plan.name!r}, {len(plan.steps)} steps, "
        f"{sum(len(s.expect) for s in plan.steps)} expectations, {plan.length_s:.0f} s"
    )


# -- verify ------------------------------------------------------------------------------------
@dataclass
class Seen:
    wall_time: float
    item: dict[str, Any]


@dataclass
class Outcome:
    index: int
    step_at: float
    expect: Expect
    published: float | None = None
    seen: Seen | None = None

    @property
    def latency_s(self) -> float | None:
        if self.seen is None or self.published is None:
            return None
        return max(0.0, self.seen.wall_time - self.published)

    @property
    def ok(self) -> bool:
        if self.expect.absent:
            return self.seen is None
        return self.latency_s is not None and self.latency_s <= self.expect.within_s


def matches(expect: Expect, item: dict[str, Any]) -> bool:
    """Does an alert item (contract §4.0) answer this expectation?"""
    if item.get("condition") != "active" or (expect.rule is not None and item.get("rule") != expect.rule):
        return False
    if expect.level is not None and item.get("level") != expect.level:
        return False
    if expect.zone is not None and item.get("zone") != expect.zone:
        return False
    return expect.subject is None or (item.get("subject") or {}).get("id") == expect.subject


@dataclass
class AlertWatcher:
    """Reads central's SSE stream on a thread and keeps every alert event with its arrival time."""

    central: str
    token: str
    seen: list[Seen] = field(default_factory=list)
    ready: threading.Event = field(default_factory=threading.Event)
    stop: threading.Event = field(default_factory=threading.Event)
    error: str | None = None

    reconnects: int = 0

    def run(self) -> None:
        """Follow the stream; if central drops it, reconnect and catch up from the alert list."""
        url = f"{self.central.rstrip('/')}/api/v1/stream"
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "text/event-stream"}
        first = True
        while not self.stop.is_set():
            dropped_at = time.time()
            try:
                with (
                    httpx.Client(timeout=httpx.Timeout(10.0, read=None)) as client,
                    client.stream("GET", url, headers=headers) as response,
                ):
                    response.raise_for_status()
                    if not first:
                        self._catch_up(client, dropped_at)
                    self.ready.set()
                    self._follow(response)
            except httpx.HTTPError as exc:
                if first:
                    self.error = f"{type(exc).__name__}: {exc}"
                    self.ready.set()
                    return
                log.warning("central's alert stream failed (%s); reconnecting", exc)
            first = False
            self.reconnects += 1
            self.stop.wait(0.5)

    def _follow(self, response: httpx.Response) -> None:
        event = ""
        for line in response.iter_lines():
            if self.stop.is_set():
                return
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:") and event == "alert":
                try:
                    self.seen.append(Seen(time.time(), json.loads(line[5:])))
                except json.JSONDecodeError:
                    log.warning("central sent an alert event that is not JSON: %.80s", line)

    def _catch_up(self, client: httpx.Client, since: float) -> None:
        """Alerts changed while the stream was down, timed at when we learn of them (an upper bound)."""
        params: dict[str, str | int] = {"since": datetime.fromtimestamp(since - 5, UTC).isoformat(), "limit": 200}
        r = client.get(
            f"{self.central.rstrip('/')}/api/v1/alerts",
            params=params,
            headers={"Authorization": f"Bearer {self.token}"},
        )
        if r.status_code == 200:
            now = time.time()
            self.seen.extend(Seen(now, item) for item in reversed(r.json().get("items", [])))


def _token(central: str, username: str, password: str) -> str:
    try:
        r = httpx.post(
            f"{central.rstrip('/')}/api/v1/auth/token", data={"username": username, "password": password}, timeout=10
        )
    except httpx.HTTPError as exc:
        typer.echo(f"cannot reach central at {central}: {exc}", err=True)
        raise typer.Exit(1) from None
    if r.status_code != 200:
        typer.echo(f"central refused the login of {username!r}: {r.status_code} {r.text[:200]}", err=True)
        raise typer.Exit(1)
    return str(r.json()["access_token"])


def verify_outcomes(outcomes: list[Outcome], seen: list[Seen]) -> None:
    """Give each expectation the first matching alert seen after its step was published.

    For `expect_none` entries only alerts inside their window count.
    """
    for o in outcomes:
        if o.published is None:
            continue
        end = o.published + o.expect.within_s if o.expect.absent else float("inf")
        for s in seen:
            if o.published - 0.05 <= s.wall_time <= end and matches(o.expect, s.item):
                o.seen = s
                break


def settled(outcomes: list[Outcome], now: float) -> bool:
    """Every expected alert has been seen and every quiet window has passed."""
    for o in outcomes:
        if o.expect.absent:
            if o.published is None or now < o.published + o.expect.within_s:
                return False
        elif o.seen is None:
            return False
    return True


def play_and_verify(player: ScenarioPlayer, watcher: AlertWatcher) -> list[Outcome]:
    """Play once, then wait until every expectation is met or its window has passed.

    Closes the player's publisher and stops the watcher; returns every expectation with what
    central answered (`Outcome.ok`, `.latency_s`).
    """
    outcomes = [Outcome(i, s.at, e) for i, s in enumerate(player.scenario.steps) for e in s.expectations]

    def on_step(played: PlayedStep) -> None:
        for o in outcomes:
            if o.index == played.index:
                o.published = played.wall_time

    try:
        player.run(on_step=on_step)
        deadline = time.time() + max((o.expect.within_s for o in outcomes), default=0.0)
        while time.time() < deadline:
            verify_outcomes(outcomes, watcher.seen)
            if settled(outcomes, time.time()):
                break
            time.sleep(0.1)
    finally:
        close = getattr(player.publisher, "close", None)
        if close is not None:
            close()
        if player.sessions is not None:
            player.sessions.close()
        watcher.stop.set()
    verify_outcomes(outcomes, watcher.seen)
    return outcomes


@app.command("verify")
def verify(
    scenario: Annotated[Path, typer.Argument(help="Scenario YAML file")],
    central: Annotated[str, typer.Option("--central", help="Central base URL, e.g. http://127.0.0.1:8080")],
    config: ConfigOpt = None,
    broker: BrokerOpt = None,
    speed: SpeedOpt = 1.0,
    seed: SeedOpt = None,
    camera_control: CameraOpt = None,
    username: Annotated[str, typer.Option("--username", help="Central user")] = "admin",
    password_env: Annotated[
        str, typer.Option("--password-env", help="Environment variable holding the password")
    ] = "GRIDWATCH_ADMIN_PASSWORD",  # noqa: S107 - the name of a variable, not a password
    device_sessions: SessionsOpt = True,
) -> None:
    """Play a scenario and check that central raised every expected alert in time; print the latencies."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    site, plan = _load(scenario, config)
    plan = _seeded(plan, seed)
    password = os.environ.get(password_env)
    if not password:
        typer.echo(f"set {password_env} to the password of {username!r}", err=True)
        raise typer.Exit(1)
    watcher = AlertWatcher(central, _token(central, username, password))
    threading.Thread(target=watcher.run, name="sse", daemon=True).start()
    watcher.ready.wait(10)
    if watcher.error:
        typer.echo(f"cannot follow central's alert stream: {watcher.error}", err=True)
        raise typer.Exit(1)

    publisher = _connect(_broker(site, broker))
    player = ScenarioPlayer(
        site,
        plan,
        publisher,
        speed=speed,
        camera_control=_camera_control(camera_control),
        sessions=_sessions(publisher, device_sessions),
    )
    outcomes = play_and_verify(player, watcher)
    _report(plan, outcomes)
    raise typer.Exit(0 if all(o.ok for o in outcomes) else 1)


def _report(plan: Scenario, outcomes: list[Outcome]) -> None:
    table = Table(title=f"{plan.name}: {sum(o.ok for o in outcomes)}/{len(outcomes)} expectations met")
    for col in ("step", "at", "expected", "got", "latency", "result"):
        table.add_column(col)
    for o in outcomes:
        e = o.expect
        want = " ".join(x for x in (("NOT " if e.absent else "") + (e.rule or "any"), e.level or "", e.zone or "") if x)
        got = "—" if o.seen is None else f"{o.seen.item.get('level')} {o.seen.item.get('title', '')}"
        latency = "—" if o.latency_s is None else f"{o.latency_s * 1000:.0f} ms"
        if o.ok:
            result = "[green]ok[/]"
        elif e.absent:
            result = "[red]unexpected[/]"
        else:
            result = "[red]late[/]" if o.seen is not None else "[red]missing[/]"
        table.add_row(str(o.index), f"{o.step_at:g}s", want, got, latency, result)
    Console().print(table)
