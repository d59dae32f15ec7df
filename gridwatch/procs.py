"""Supervise a tree of child processes: start, restart on unexpected exit, stop cleanly.

Used by `gridwatch demo` and by the end-to-end tests and benchmarks. Children run in their own
session (so a terminal Ctrl-C reaches only us, and we stop them in order) and get SIGTERM from
the kernel if we die (PR_SET_PDEATHSIG), so no orphan outlives the tree.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("gridwatch.procs")

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the child between fork and exec
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class Child:
    name: str
    argv: Sequence[str]
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    log_path: Path | None = None
    restart: bool = True
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    next_start: float = 0.0

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def start(self) -> None:
        env = {**os.environ, **self.env}
        out = self.log_path.open("ab") if self.log_path else subprocess.DEVNULL
        self.proc = subprocess.Popen(
            list(self.argv), env=env, cwd=self.cwd, stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=_die_with_parent,
        )
        log.info("started %s (pid %s)", self.name, self.proc.pid)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop within %.0f s after SIGTERM; killing it", self.name, timeout)
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


class Supervisor:
    """Start children in order, restart any that exits unexpectedly (with backoff), stop in reverse."""

    def __init__(self) -> None:
        self.children: list[Child] = []

    def add(self, child: Child) -> Child:
        self.children.append(child)
        child.start()
        return child

    def poll(self) -> list[str]:
        """Restart children that died; returns log lines describing what happened."""
        events = []
        now = time.monotonic()
        for child in self.children:
            if child.proc is None or child.proc.poll() is None:
                continue
            code = child.proc.returncode
            if not child.restart:
                continue
            if child.next_start == 0.0:
                delay = min(30.0, 0.5 * 2 ** min(child.restarts, 6))
                child.next_start = now + delay
                tail = ""
                if child.log_path and child.log_path.exists():
                    lines = child.log_path.read_text(errors="replace")[-600:].strip().splitlines()
                    tail = f"; last log line: {lines[-1]}" if lines else ""
                events.append(f"{child.name} exited with {code}{tail}; restarting in {delay:.1f} s")
            elif now >= child.next_start:
                child.restarts += 1
                child.next_start = 0.0
                child.start()
        return events

    def stop_all(self, timeout: float = 10.0) -> None:
        for child in reversed(self.children):
            child.stop(timeout)
