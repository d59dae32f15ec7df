"""VictoriaMetrics on a free port, as a real time-series server for the tsdb tests."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gridwatch.broker import free_port

VM_BINARY = Path("/usr/bin/victoria-metrics")


def start_victoria_metrics(port: int, data: Path, log: Path) -> subprocess.Popen[bytes]:
    """Start VictoriaMetrics on 127.0.0.1:`port` and wait for /health; fails the test if it cannot."""
    if not VM_BINARY.exists():
        pytest.fail(f"{VM_BINARY} not found: run scripts/setup.sh", pytrace=False)
    out = log.open("ab")
    proc = subprocess.Popen(
        [
            str(VM_BINARY),
            f"-httpListenAddr=127.0.0.1:{port}",
            f"-storageDataPath={data}",
            "-retentionPeriod=100y",
            "-search.latencyOffset=0s",
        ],
        stdout=out,
        stderr=out,
        start_new_session=True,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"victoria-metrics exited with {proc.returncode}:\n{log.read_text()[-2000:]}", pytrace=False)
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=0.5).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    stop_victoria_metrics(proc)
    pytest.fail(f"victoria-metrics did not answer /health on port {port} within 20 s", pytrace=False)


def stop_victoria_metrics(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def force_flush(base_url: str) -> None:
    """Make freshly written samples searchable now (VictoriaMetrics buffers them for about a second)."""
    httpx.get(f"{base_url}/internal/force_flush", timeout=10).raise_for_status()


@pytest.fixture(scope="session")
def victoria_metrics(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL of a VictoriaMetrics of this test session."""
    work = tmp_path_factory.mktemp("victoria-metrics")
    port = free_port()
    proc = start_victoria_metrics(port, work / "data", work / "vm.log")
    yield f"http://127.0.0.1:{port}"
    stop_victoria_metrics(proc)
