"""Play every scenario of the library against a freshly started system and report what central answered.

    .venv/bin/python -m bench.scenarios                     # all of configs/scenarios against the demo site
    .venv/bin/python -m bench.scenarios sos door-forced     # some of them

Starts the demo tree without its own player (broker, central, two edges, camera simulator), then
runs `gridwatch sim verify` for each scenario in turn, as a tester would, waiting between them
for the previous scenario's alerts to clear. Exit code 0 only if every scenario passes.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from gridwatch.demo import start_demo

REPO = Path(__file__).resolve().parent.parent
DEMO_SITE = REPO / "configs" / "demo-site.yaml"
LIBRARY = REPO / "configs" / "scenarios"
SKIP = {"load-profile"}  # plays against configs/load-site.yaml: `gridwatch sim run` it on its own
SETTLE_S = 15.0  # longer than the 10 s quiet period, so alerts of one scenario clear before the next


def main(argv: list[str]) -> int:
    names = argv or sorted(p.stem for p in LIBRARY.glob("*.yaml") if p.stem not in SKIP)
    console = Console()
    results: list[tuple[str, int, str, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        tree = start_demo(DEMO_SITE, Path(tmp) / "scenarios", cameras=True, play=False)
        try:
            env = {**os.environ, "GRIDWATCH_ADMIN_PASSWORD": tree.login[1]}
            for name in names:
                started = time.monotonic()
                argv_ = [
                    sys.executable,
                    "-m",
                    "gridwatch.cli",
                    "sim",
                    "verify",
                    str(LIBRARY / f"{name}.yaml"),
                    "--config",
                    str(DEMO_SITE),
                    "--central",
                    tree.central_url,
                    "--broker",
                    tree.broker.url("devices"),
                ]
                if tree.camera_control:
                    argv_ += ["--camera-control", tree.camera_control]
                run = subprocess.run(argv_, env=env, capture_output=True, text=True, timeout=900, check=False)
                results.append((name, run.returncode, run.stdout + run.stderr, time.monotonic() - started))
                console.print(run.stdout, end="", highlight=False, markup=False)
                if run.returncode != 0 and run.stderr:
                    console.print(run.stderr[-2000:], highlight=False, markup=False)
                time.sleep(SETTLE_S)
        finally:
            tree.stop()
    table = Table(title="scenario library against the demo site")
    for col in ("scenario", "result", "seconds"):
        table.add_column(col)
    for name, code, _out, seconds in results:
        table.add_row(name, "[green]pass[/]" if code == 0 else "[red]FAIL[/]", f"{seconds:.0f}")
    console.print(table)
    return 0 if all(code == 0 for _n, code, _o, _s in results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
