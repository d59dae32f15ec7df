"""`gridwatch demo` as a new user runs it: starts, an alarm reaches the API, stops, leaves nothing behind."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

pytestmark = pytest.mark.integration


def _leftovers(workdir: Path) -> list[str]:
    """Processes still running that belong to this demo (their command line names its workdir)."""
    out = []
    for proc in psutil.process_iter(["pid", "cmdline", "cwd"]):
        try:
            cmd = " ".join(proc.info["cmdline"] or [])
            if str(workdir) in cmd or proc.info["cwd"] == str(workdir):
                out.append(f"{proc.info['pid']}: {cmd[:120]}")
        except (psutil.Error, TypeError):
            continue
    return out


def test_demo_runs_an_alarm_through_and_stops_cleanly(tmp_path: Path) -> None:
    workdir = tmp_path / "demo"
    started = time.monotonic()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "gridwatch.cli",
            "demo",
            "--workdir",
            str(workdir),
            "--duration",
            "90",
            "--expect-alert",
            "--speed",
            "4",
        ],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "gridwatch demo is running" in output
    assert "login    admin / " in output
    assert "alert reached central" in output
    assert "demo stopped" in output
    time.sleep(0.5)
    assert _leftovers(workdir) == [], "orphan processes after the demo stopped"
    print(f"demo up, alarm through and down in {time.monotonic() - started:.1f} s")
