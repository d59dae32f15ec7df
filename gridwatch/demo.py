"""`gridwatch demo`: the whole system on this machine, as one supervised process tree.

An embedded Mosquitto (spawned with a generated config, per-edge credentials and ACLs — the
pure-Python brokers we measured lack persistent sessions and QoS 1 redelivery, so they cannot
keep the no-loss promise), central with the embedded SQLite stores, one edge per edge of the
site config, the camera simulator over RTSP and the device simulators playing the site's
scenario in a loop. Ctrl-C stops everything; the kernel stops the children if we are killed.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import shlex
import shutil
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import httpx
import typer

from gridwatch.broker import CENTRAL_ACL, DEVICES_ACL, BrokerUser, Mosquitto, edge_acl, free_port, port_open
from gridwatch.config import ConfigError, load_site
from gridwatch.procs import Child, Supervisor

log = logging.getLogger("gridwatch.demo")

REPO_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "demo-site.yaml"
_PASSWORD_VARS = re.compile(r"password:\s*\"?\$\{([A-Za-z_][A-Za-z0-9_]*)")


@dataclass
class DemoTree:
    """Everything the demo started; `stop()` takes it down in reverse order."""

    workdir: Path
    broker: Mosquitto
    supervisor: Supervisor
    central_url: str
    login: tuple[str, str]
    edge_status: dict[str, str]
    camera_control: str = ""  # HOST:PORT of the camera simulator's control socket, if cameras run

    def stop(self) -> None:
        self.supervisor.stop_all()
        self.broker.stop()


def _gridwatch(*args: str) -> list[str]:
    return [sys.executable, "-m", "gridwatch.cli", *args]


def start_demo(
    config: Path,
    workdir: Path,
    *,
    speed: float = 1.0,
    cameras: bool = True,
    central_port: int | None = None,
    play: bool = True,
) -> DemoTree:
    """Start the tree and wait until central is ready; raises RuntimeError naming what failed.

    `play=False` leaves out the scenario player, for tests that drive the devices themselves.
    """
    config = config.resolve()
    env_probe = dict(os.environ)
    password_vars = sorted(set(_PASSWORD_VARS.findall(config.read_text())))
    for var in password_vars:
        env_probe.setdefault(var, "x")
    site = load_site(config, env=env_probe)
    if workdir.exists():
        shutil.rmtree(workdir)
    (workdir / "logs").mkdir(parents=True)

    users = [
        BrokerUser("devices", secrets.token_hex(12), DEVICES_ACL),
        BrokerUser("central", secrets.token_hex(12), CENTRAL_ACL),
    ]
    users += [BrokerUser(e.id, secrets.token_hex(12), edge_acl(e.id)) for e in site.edges]
    broker = Mosquitto(workdir / "broker", users=users)
    broker.start()
    supervisor = Supervisor()
    admin_password = secrets.token_urlsafe(9)
    user_password = secrets.token_urlsafe(9)
    port = central_port or free_port()
    central_url = f"http://127.0.0.1:{port}"
    common = {
        "GRIDWATCH_ADMIN_PASSWORD": admin_password,
        **{var: user_password for var in password_vars},
        "GRIDWATCH_SECRET_KEY": secrets.token_hex(32),
        "GRIDWATCH_LOG_LEVEL": os.environ.get("GRIDWATCH_LOG_LEVEL", "INFO"),
        "PYTHONUNBUFFERED": "1",
    }
    try:
        camera_env: dict[str, str] = {}
        camera_control = ""
        if cameras and any(d.family == "camera" for d in site.devices):
            rtsp_port, control_port = _start_cameras(supervisor, config, common, workdir)
            camera_env["GRIDWATCH_CAMERA_BASE"] = f"rtsp://127.0.0.1:{rtsp_port}"
            camera_control = f"127.0.0.1:{control_port}"
        supervisor.add(
            Child(
                "central",
                _gridwatch("central", "run", "--config", str(config), "--bind", f"127.0.0.1:{port}"),
                env={
                    **common,
                    **camera_env,
                    "GRIDWATCH_UPLINK_BROKER": broker.url("central"),
                    "GRIDWATCH_DATABASE_URL": f"sqlite:///{workdir / 'central.db'}",
                    "GRIDWATCH_TSDB_URL": f"sqlite:///{workdir / 'central-tsdb.db'}",
                },
                cwd=workdir,
                log_path=workdir / "logs" / "central.log",
            )
        )
        edge_status = {}
        for edge in site.edges:
            status_port = free_port()
            edge_status[edge.id] = f"http://127.0.0.1:{status_port}/status"
            supervisor.add(
                Child(
                    f"edge {edge.id}",
                    _gridwatch(
                        "edge",
                        "run",
                        "--config",
                        str(config),
                        "--edge",
                        edge.id,
                        "--status-bind",
                        f"127.0.0.1:{status_port}",
                    ),
                    env={
                        **common,
                        **camera_env,
                        "GRIDWATCH_DEVICE_BROKER": broker.url(edge.id),
                        "GRIDWATCH_UPLINK_BROKER": broker.url(edge.id),
                    },
                    cwd=workdir,
                    log_path=workdir / "logs" / f"edge-{edge.id}.log",
                )
            )
        _write_env_files(
            workdir,
            config,
            site_edges=[e.id for e in site.edges],
            broker=broker,
            central_bind=f"127.0.0.1:{port}",
            extra=camera_env,
            tsdb=f"sqlite:///{workdir / 'central-tsdb.db'}",
        )
        _wait_ready(central_url, supervisor, timeout=60)
        if site.scenario and play:
            scenario = (config.parent / site.scenario).resolve()
            control = ["--camera-control", camera_control] if camera_control else []
            supervisor.add(
                Child(
                    "simulators",
                    _gridwatch(
                        "sim",
                        "run",
                        str(scenario),
                        "--config",
                        str(config),
                        "--broker",
                        broker.url("devices"),
                        "--speed",
                        str(speed),
                        "--loop",
                        *control,
                    ),
                    env={**common, **camera_env},
                    cwd=workdir,
                    log_path=workdir / "logs" / "simulators.log",
                )
            )
    except BaseException:
        supervisor.stop_all()
        broker.stop()
        raise
    return DemoTree(workdir, broker, supervisor, central_url, ("admin", admin_password), edge_status, camera_control)


def _write_env_files(
    workdir: Path,
    config: Path,
    *,
    site_edges: list[str],
    broker: Mosquitto,
    central_bind: str,
    extra: dict[str, str],
    tsdb: str,
) -> None:
    """One `<edge>.env` per edge with what `gridwatch doctor --edge <edge>` needs to check this demo.

    `set -a; . var/demo/edge-w1.env; set +a; gridwatch doctor --edge edge-w1` — the demo's broker runs
    on a free port with generated passwords, so the config file alone cannot reach it.
    """
    for edge in site_edges:
        values = {
            "GRIDWATCH_CONFIG": str(config),
            "GRIDWATCH_CENTRAL_BIND": central_bind,
            "GRIDWATCH_DEVICE_BROKER": broker.url(edge),
            "GRIDWATCH_UPLINK_BROKER": broker.url(edge),
            "GRIDWATCH_TSDB_URL": tsdb,
            **extra,
        }
        path = workdir / f"{edge}.env"
        path.write_text("".join(f"{k}={shlex.quote(v)}\n" for k, v in values.items()))
        path.chmod(0o600)


def doctor_env(workdir: Path, edge: str) -> dict[str, str]:
    """The variables of a demo's `<edge>.env` file, for running doctor against it."""
    out = {}
    for line in (workdir / f"{edge}.env").read_text().splitlines():
        key, _, value = line.partition("=")
        out[key] = shlex.split(value)[0] if value else ""
    return out


CAMERA_ATTEMPTS = 3


def _start_cameras(supervisor: Supervisor, config: Path, env: dict[str, str], workdir: Path) -> tuple[int, int]:
    """Start the RTSP camera simulator on free ports; (rtsp port, control port) once it listens.

    A port found free can be taken by another process before the server binds it (seen once in
    CI): the simulator then exits at once, and is started again on other ports.
    """
    for attempt in range(1, CAMERA_ATTEMPTS + 1):
        rtsp_port, control_port = free_port(), free_port()
        child = Child(
            "cameras",
            [
                sys.executable,
                "-m",
                "simulators.camera",
                "serve",
                "--config",
                str(config),
                "--port",
                str(rtsp_port),
                "--control-port",
                str(control_port),
            ],
            env=env,
            cwd=workdir,
            log_path=workdir / "logs" / "cameras.log",
        )
        supervisor.add(child)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and child.alive() and not port_open(rtsp_port):
            time.sleep(0.1)
        if child.alive():
            return rtsp_port, control_port  # listening (or still starting: _wait_ready watches it)
        supervisor.children.remove(child)
        log.warning("camera simulator exited while starting on port %d (attempt %d of %d)", rtsp_port, attempt,
                    CAMERA_ATTEMPTS)  # fmt: skip
    tail = (workdir / "logs" / "cameras.log").read_text(errors="replace")[-1500:]
    raise RuntimeError(f"cameras exited while starting, {CAMERA_ATTEMPTS} times on different ports:\n{tail}")


def _wait_ready(url: str, supervisor: Supervisor, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        for child in supervisor.children:
            if child.proc is not None and child.proc.poll() is not None:
                tail = child.log_path.read_text(errors="replace")[-1500:] if child.log_path else ""
                raise RuntimeError(f"{child.name} exited with {child.proc.returncode} while starting:\n{tail}")
        try:
            response = httpx.get(f"{url}/readyz", timeout=2)
            if response.status_code == 200:
                return
            last = response.text[:200]
        except httpx.HTTPError as exc:
            last = str(exc)
        time.sleep(0.3)
    raise RuntimeError(f"central at {url} was not ready within {timeout:.0f} s: {last}")


def first_alert(tree: DemoTree, timeout: float) -> dict[str, object] | None:
    """Log in as admin and wait for the first alert to reach central's API."""
    token = httpx.post(
        f"{tree.central_url}/api/v1/auth/token", data={"username": tree.login[0], "password": tree.login[1]}, timeout=5
    ).json()["access_token"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        tree.supervisor.poll()
        items = httpx.get(
            f"{tree.central_url}/api/v1/alerts",
            params={"limit": 1},
            headers={"Authorization": f"Bearer {token}"},
            timeout=5,
        ).json()["items"]
        if items:
            item: dict[str, object] = items[0]
            return item
        time.sleep(0.5)
    return None


def register(app: typer.Typer) -> None:
    @app.command()
    def demo(
        config: Annotated[Path, typer.Option(help="Site config to run")] = REPO_CONFIG,
        workdir: Annotated[Path, typer.Option(help="Where the demo keeps its state (wiped at start)")] = Path(
            "var/demo"
        ),
        speed: Annotated[float, typer.Option(help="Scenario speed factor")] = 1.0,
        cameras: Annotated[bool, typer.Option(help="Run the RTSP camera simulator")] = True,
        port: Annotated[int, typer.Option(help="Central's port (0 = a free one)")] = 0,
        duration: Annotated[float, typer.Option(help="Stop after this many seconds (0 = until Ctrl-C)")] = 0,
        expect_alert: Annotated[
            bool,
            typer.Option(
                help="Exit 0 once an alert reaches central's API, 1 if none arrives within --duration (for CI)"
            ),
        ] = False,
    ) -> None:
        """Run broker, central, edges, cameras and simulators on this machine; print the console URL and a login."""
        from rich.console import Console

        logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
        console = Console()
        try:
            with console.status("starting broker, central, edges, cameras, simulators…"):
                tree = start_demo(config, workdir.resolve(), speed=speed, cameras=cameras, central_port=port or None)
        except ConfigError as exc:
            for problem in exc.problems:
                console.print(str(problem), markup=False)
            raise typer.Exit(1) from None
        except (RuntimeError, OSError) as exc:
            console.print(f"[red]demo failed to start:[/] {exc}", markup=True, highlight=False)
            raise typer.Exit(1) from None

        stop = False

        def _stop(*_: object) -> None:
            nonlocal stop
            stop = True

        signal.signal(signal.SIGINT, _stop)
        signal.signal(signal.SIGTERM, _stop)
        console.print(
            f"\n[bold green]gridwatch demo is running[/]\n  console  {tree.central_url}/\n"
            f"  login    {tree.login[0]} / {tree.login[1]}\n  logs     {tree.workdir / 'logs'}\n"
            + "".join(f"  edge     {k}: {v}\n" for k, v in tree.edge_status.items())
            + f"  doctor   set -a; . {tree.workdir}/{next(iter(tree.edge_status), 'edge')}.env; set +a; "
            f"gridwatch doctor --edge {next(iter(tree.edge_status), 'edge')}\n" + "Ctrl-C stops everything.",
            highlight=False,
        )
        code = 0
        try:
            if expect_alert:
                alert = first_alert(tree, duration or 120)
                if alert is None:
                    console.print("[red]no alert reached central's API in time[/]")
                    code = 1
                else:
                    console.print(
                        f"alert reached central: {alert.get('level')} {alert.get('rule')} — {alert.get('title')}",
                        highlight=False,
                    )
            else:
                deadline = time.monotonic() + duration if duration else None
                while not stop and (deadline is None or time.monotonic() < deadline):
                    for line in tree.supervisor.poll():
                        console.print(f"[yellow]{line}[/]", highlight=False)
                    time.sleep(0.5)
        finally:
            with console.status("stopping…"):
                tree.stop()
            console.print("demo stopped")
        raise typer.Exit(code)
