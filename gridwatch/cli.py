"""The `gridwatch` command: one entry point for every part of the system (contract §7)."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Annotated

import typer

from gridwatch import __version__

app = typer.Typer(
    name="gridwatch",
    help="gridwatch: edge gateway and warning service for secure facilities.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
config_app = typer.Typer(help="Check site config files.", no_args_is_help=True)
app.add_typer(config_app, name="config")


@app.command()
def version() -> None:
    """Print the gridwatch version."""
    typer.echo(__version__)


@config_app.command("validate")
def config_validate(
    files: Annotated[list[Path], typer.Argument(help="Site YAML files to check", metavar="FILE…")],
) -> None:
    """Check site config files; print every problem as FILE:LINE: path: message and exit 1 if any."""
    from gridwatch.config import ConfigError, load_site

    failed = False
    for path in files:
        try:
            config = load_site(path)
        except ConfigError as exc:
            failed = True
            for problem in exc.problems:
                typer.echo(str(problem), err=True)
            typer.echo(f"{path}: {len(exc.problems)} problem(s)", err=True)
            continue
        typer.echo(
            f"{path}: ok — site '{config.site.id}', {len(config.areas)} areas, "
            f"{sum(len(a.grids) for a in config.areas)} grids, {len(config.zones)} zones, "
            f"{len(config.devices)} devices, {len(config.people)} people, {len(config.edges)} edges"
        )
    raise typer.Exit(1 if failed else 0)


def _register_subcommands() -> None:
    """Attach the Typer apps of the other packages when they are installed alongside.

    Each module exposes `app` (a Typer); the import is deferred so that `gridwatch config
    validate` works on a machine that only has the contract package's dependencies.
    """
    for name, module in (
        ("edge", "edge.cli"),
        ("central", "central.cli"),
        ("sim", "simulators.cli"),
    ):
        try:
            sub = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name is not None and exc.name.split(".")[0] == module.split(".")[0]:
                continue  # that package is not built yet / not installed
            raise
        app.add_typer(sub.app, name=name)
    for module in ("gridwatch.demo", "gridwatch.doctor"):
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name == module:
                continue
            raise
        mod.register(app)


_register_subcommands()

if __name__ == "__main__":
    app()
