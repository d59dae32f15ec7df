"""`gridwatch edge run`: the edge agent from a site config (contract §7)."""

from __future__ import annotations

import asyncio
import gc
import hashlib
import logging
import os
from pathlib import Path
from typing import Annotated

import typer

from gridwatch.config import ConfigError, load_site
from gridwatch.config.broker import BrokerUrl
from gridwatch.config.models import Edge, SiteConfig

app = typer.Typer(help="The edge agent: devices in, alerts out.", no_args_is_help=True, add_completion=False)

LOG_LEVELS = ("debug", "info", "warning", "error")


@app.callback()
def _edge() -> None:
    """The edge agent: devices in, alerts out."""


def _fail(lines: list[str]) -> typer.Exit:
    for line in lines:
        typer.echo(line, err=True)
    return typer.Exit(1)


def _load(config: Path) -> tuple[SiteConfig, str]:
    """The site and a short hash of the file's bytes (sent in heartbeats); exits 1 on any problem."""
    try:
        site = load_site(config)
    except ConfigError as exc:
        raise _fail([str(p) for p in exc.problems] + [f"{config}: {len(exc.problems)} problem(s)"]) from None
    digest = hashlib.sha256(config.read_bytes()).hexdigest()[:16]
    return site, digest


def _brokers(config: Path, edge: Edge) -> tuple[str, str]:
    """Device and uplink broker URLs: the environment overrides the config; exits 1 if one is malformed."""
    device = os.environ.get("GRIDWATCH_DEVICE_BROKER") or edge.device_broker
    uplink = os.environ.get("GRIDWATCH_UPLINK_BROKER") or edge.uplink_broker
    problems = []
    for name, env, url in (
        ("device_broker", "GRIDWATCH_DEVICE_BROKER", device),
        ("uplink_broker", "GRIDWATCH_UPLINK_BROKER", uplink),
    ):
        try:
            BrokerUrl.parse(url)
        except ValueError as exc:
            source = env if os.environ.get(env) else f"{config}: edges[{edge.id}].{name}"
            problems.append(f"{source}: {exc}")
    if problems:
        raise _fail(problems)
    return device, uplink


@app.command("run")
def run(
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="Site YAML file", envvar="GRIDWATCH_CONFIG", show_envvar=True),
    ] = None,
    edge: Annotated[str | None, typer.Option("--edge", help="Edge id; may be omitted if the config has one")] = None,
    status_bind: Annotated[
        str | None, typer.Option("--status-bind", help="HOST:PORT of /status and /metrics (default: the config's)")
    ] = None,
    log_level: Annotated[str, typer.Option("--log-level", help="debug, info, warning or error")] = "info",
) -> None:
    """Run one edge agent: read its devices, raise alerts, forward them to central."""
    from edge.status import parse_bind

    if log_level.lower() not in LOG_LEVELS:
        raise _fail([f"--log-level: {log_level!r} is not one of {', '.join(LOG_LEVELS)}"])
    if config is None:
        raise _fail(["--config: give the site YAML file (or set GRIDWATCH_CONFIG)"])
    site, config_hash = _load(config)
    try:
        edge_cfg = site.edge(edge)
    except KeyError as exc:
        raise _fail([f"{config}: edges: {exc.args[0]}"]) from None
    device_broker, uplink_broker = _brokers(config, edge_cfg)
    bind = status_bind or edge_cfg.status_bind
    try:
        parse_bind(bind)
    except ValueError as exc:
        where = "--status-bind" if status_bind else f"{config}: edges[{edge_cfg.id}].status_bind"
        raise _fail([f"{where}: {exc}"]) from None

    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S"
    )
    from edge.agent import EdgeAgent  # deferred: cameras and rules are heavy imports

    try:
        agent = EdgeAgent(
            site,
            edge_cfg.id,
            device_broker=device_broker,
            uplink_broker=uplink_broker,
            outbox_path=Path(edge_cfg.outbox),
            status_bind=bind,
            config_hash=config_hash,
        )
    except OSError as exc:
        raise _fail([f"edge {edge_cfg.id}: cannot open the outbox {edge_cfg.outbox}: {exc}"]) from None
    try:
        gc.freeze()  # the site and rule tables live as long as the process: out of the collector's full passes
        asyncio.run(agent.run())
    except OSError as exc:
        raise _fail([f"edge {edge_cfg.id}: {exc.strerror or exc}"]) from None
    except KeyboardInterrupt:
        pass
