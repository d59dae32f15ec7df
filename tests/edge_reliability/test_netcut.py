"""A pulled uplink cable: the edge notices, keeps every alert, and delivers each once when it is back.

The scenario itself (tests/edge_reliability/netcut.py) runs in network namespaces of its own,
joined by a veth pair whose edge end is taken down for 30 s; this test starts it under
`unshare -n` and reports its counts. Without namespaces (not root) it fails, saying so: a fault
test that quietly skips would let CI pass without it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.integration


def _namespaces_available() -> str | None:
    probe = ["unshare", "-n", "ip", "link", "add", "probe0", "type", "veth", "peer", "name", "probe1"]
    try:
        done = subprocess.run(probe, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"cannot run unshare/ip: {exc}"
    if done.returncode != 0:
        return f"no network namespace with a veth pair here (needs root or CAP_NET_ADMIN): {done.stderr.strip()}"
    return None


def test_network_cut_between_edge_and_uplink(tmp_path: Path) -> None:
    missing = _namespaces_available()
    assert missing is None, (
        f"the network-cut test needs its own network namespaces and a veth pair: {missing}. "
        "Run the tests as root (CI does), or in a container with CAP_SYS_ADMIN and CAP_NET_ADMIN."
    )
    run = subprocess.run(
        ["unshare", "-n", sys.executable, "-m", "tests.edge_reliability.netcut", "run", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, f"the network-cut scenario failed:\n{run.stdout[-3000:]}\n{run.stderr[-6000:]}"
    result = json.loads((tmp_path / "result.json").read_text())
    print("\nnetwork cut 30 s:", " ".join(f"{k}={v}" for k, v in result.items()))
    assert result["sos_during_cut"] > 0 and result["alerts"] > 0
    assert result["outbox_depth_before_heal"] > 0  # the edge held what it could not send
