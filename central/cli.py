"""`gridwatch central …`: run the API/ingest server, add users, migrate the database."""

from __future__ import annotations

import gc
import logging
import os
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from gridwatch.config import ConfigError, load_site
from gridwatch.config.models import SiteConfig
from gridwatch.contract.enums import UserRole

app = typer.Typer(help="Central warning service: API, ingest, console.", no_args_is_help=True)
user_app = typer.Typer(help="Manage console/API users.", no_args_is_help=True)
app.add_typer(user_app, name="user")

ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="Site YAML (default: $GRIDWATCH_CONFIG)", show_default=False),
]


def _setup_logging(dev: bool = False) -> None:
    level = os.environ.get("GRIDWATCH_LOG_LEVEL", "DEBUG" if dev else "INFO").upper()
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _fail(message: str) -> NoReturn:
    typer.echo(message, err=True)
    raise typer.Exit(1)


def _config_problems(exc: ConfigError) -> NoReturn:
    for problem in exc.problems:
        typer.echo(str(problem), err=True)
    _fail(f"{len(exc.problems)} problem(s) in the site config; central did not start")


def _site(config: Path | None) -> SiteConfig:
    path = config or os.environ.get("GRIDWATCH_CONFIG")
    if not path:
        _fail("no site config: pass --config FILE or set GRIDWATCH_CONFIG")
    try:
        return load_site(path)
    except ConfigError as exc:
        _config_problems(exc)


@app.command()
def run(
    config: ConfigOpt = None,
    bind: Annotated[str | None, typer.Option(help="HOST:PORT (default: central.bind, $GRIDWATCH_CENTRAL_BIND)")] = None,
    role: Annotated[
        str, typer.Option(help="all: API+ingest+timers; ingest: ingest+timers (health only); api: HTTP only")
    ] = "all",
    dev: Annotated[
        bool,
        typer.Option(
            "--dev",
            help="Debug logging, CORS for localhost consoles; a throwaway token key if GRIDWATCH_SECRET_KEY is unset",
        ),
    ] = False,
    worker: Annotated[
        str | None,
        typer.Option(
            help="Stable ingest worker id (1, 2, …; default $GRIDWATCH_INGEST_WORKER): one persistent broker "
            "session per id, so a restarted worker gets back what the broker queued for it",
        ),
    ] = None,
) -> None:
    """Run central: the warning API, the SSE stream, the uplink ingest and the console."""
    import uvicorn

    from central.app import create_app
    from central.settings import MissingSecretKey, Settings, parse_bind

    if role not in ("all", "ingest", "api"):
        _fail(f"--role must be all, ingest or api (not {role!r})")
    _setup_logging(dev)
    site = _site(config)
    try:
        settings = Settings.from_site(site, bind=bind, role=role, dev=dev, worker=worker)  # type: ignore[arg-type]
        host, port = parse_bind(settings.bind)
    except MissingSecretKey as exc:
        _fail(f"error: {exc}; central did not start")
    except ValueError as exc:
        _fail(f"error: {exc}")
    app_ = create_app(settings)
    # what is loaded by now (modules, the site model, FastAPI's routes) lives as long as the process:
    # keep it out of the garbage collector's full passes, which walked its ~130,000 objects in 54 ms
    # each and made the API's p99 under load (bench/central.py)
    gc.freeze()
    uvicorn.run(
        app_,
        host=host,
        port=port,
        log_level="debug" if dev else "info",
        access_log=dev,
        timeout_graceful_shutdown=5,  # SSE streams never end by themselves
    )


def _database_url(config: Path | None) -> str:
    url = os.environ.get("GRIDWATCH_DATABASE_URL")
    if url:
        return url
    if config or os.environ.get("GRIDWATCH_CONFIG"):
        return _site(config).central.database_url
    return "sqlite:///var/central.db"


@app.command()
def migrate(config: ConfigOpt = None) -> None:
    """Create or upgrade central's database schema (also done at every start)."""
    from central.settings import ensure_sqlite_dir
    from central.store.db import open_database

    _setup_logging()
    url = _database_url(config)
    ensure_sqlite_dir(url)
    try:
        db = open_database(url)
    except Exception as exc:  # a CLI answers with the reason, not a traceback
        _fail(f"cannot migrate the database: {exc}")
    db.close()
    typer.echo("database schema is up to date")


@user_app.command("add")
def user_add(
    username: Annotated[str, typer.Argument(help="Login name")],
    role: Annotated[UserRole, typer.Option(help="operator, officer, supervisor, engineer or admin")],
    config: ConfigOpt = None,
) -> None:
    """Add a user (or set a new password); the password comes from $GRIDWATCH_NEW_PASSWORD or a hidden prompt."""
    from central.service import CentralService
    from central.settings import ensure_sqlite_dir
    from central.store.db import open_database
    from central.workflow import WorkflowError
    from gridwatch.clock import SystemClock

    site = _site(config)
    password = os.environ.get("GRIDWATCH_NEW_PASSWORD") or typer.prompt(
        f"password for {username}", hide_input=True, confirmation_prompt=True
    )
    if len(password) < 8:
        _fail("the password must have at least 8 characters")
    url = os.environ.get("GRIDWATCH_DATABASE_URL") or site.central.database_url
    ensure_sqlite_dir(url)
    db = open_database(url)
    try:
        service = CentralService(db, site, clock=SystemClock(), publish=lambda _event, _data: None)
        service.create_user(username, password, role)
    except (WorkflowError, ValueError) as exc:
        _fail(f"cannot add user {username!r}: {getattr(exc, 'detail', exc)}")
    finally:
        db.close()
    typer.echo(f"user {username!r} ({role}) saved")
