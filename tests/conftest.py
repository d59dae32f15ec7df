"""Shared fixtures: real services on free ports, started once per session and stopped at the end.

A service that cannot start fails the run with what to install; nothing is skipped quietly.
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from gridwatch.broker import ADMIN_ACL, CENTRAL_ACL, DEVICES_ACL, BrokerError, BrokerUser, Mosquitto, free_port

REPO = Path(__file__).resolve().parent.parent


def _find_shared() -> Path:
    """The project's shared folder (CONTRACT.md, real footage): $GRIDWATCH_SHARED, else beside the
    checkout (`../shared`), else /work/shared where a checkout elsewhere (CI) still finds it."""
    candidates = [Path(p) for p in (os.environ.get("GRIDWATCH_SHARED"),) if p]
    candidates += [REPO.parent / "shared", Path("/work/shared")]
    for candidate in candidates:
        if (candidate / "CONTRACT.md").is_file():
            return candidate
    return candidates[0]  # tests that need it fail with this path in their message


SHARED = _find_shared()
SHARED_DATA = SHARED / "data"
DEMO_SITE = REPO / "configs" / "demo-site.yaml"


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    """A private Mosquitto with auth, ACLs and persistence; users admin, devices, central.

    Add per-edge users with `mosquitto.add_user(edge_id, edge_acl(edge_id))`. Tests that stop or
    restart it must leave it running (use the `fresh_mosquitto` fixture to get your own).
    """
    broker = Mosquitto(
        tmp_path_factory.mktemp("mosquitto"),
        users=[
            BrokerUser("admin", "admin-secret", ADMIN_ACL),
            BrokerUser("devices", "devices-secret", DEVICES_ACL),
            BrokerUser("central", "central-secret", CENTRAL_ACL),
        ],
    )
    try:
        broker.start()
    except BrokerError as exc:
        pytest.fail(f"cannot start Mosquitto: {exc}\nInstall it with scripts/setup.sh", pytrace=False)
    yield broker
    broker.stop()


@pytest.fixture
def fresh_mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    """A Mosquitto of this test's own, free to stop, kill and restart."""
    broker = Mosquitto(
        tmp_path / "mosquitto",
        users=[
            BrokerUser("admin", "admin-secret", ADMIN_ACL),
            BrokerUser("devices", "devices-secret", DEVICES_ACL),
            BrokerUser("central", "central-secret", CENTRAL_ACL),
        ],
    )
    try:
        broker.start()
    except BrokerError as exc:
        pytest.fail(f"cannot start Mosquitto: {exc}\nInstall it with scripts/setup.sh", pytrace=False)
    yield broker
    broker.stop()


# -- PostgreSQL ----------------------------------------------------------------------------------

MACHINE_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
PG_INSTALL_HINT = "install PostgreSQL: scripts/setup.sh"


def libpq_url(url: str) -> str:
    """A SQLAlchemy `postgresql+psycopg://` URL as the plain libpq URL psycopg.connect takes."""
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def _pg_answers(url: str) -> bool:
    try:
        with psycopg.connect(libpq_url(url), connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error:
        return False
    return True


def _pg_bindir() -> Path | None:
    """The newest PostgreSQL server bin dir (Debian's /usr/lib/postgresql/N/bin, else `initdb` on PATH)."""

    def version(path: str) -> tuple[int, ...]:
        return tuple(int(n) for n in re.findall(r"\d+", Path(path).parent.parent.name))

    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=version)
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


class ThrowawayPostgres:
    """A private cluster: initdb (trust auth, superuser `postgres`) into a temp dir, then pg_ctl on a
    free 127.0.0.1 port with its unix socket in that dir. initdb refuses to run as root, so as root
    the cluster is created and run by the `postgres` system user via `runuser` in a dir it owns.
    """

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.as_postgres = os.geteuid() == 0
        self.port = 0
        self.root = Path(tempfile.mkdtemp(prefix="gridwatch-pg-"))  # /tmp: short socket path, traversable
        self.data, self.sock, self.log = self.root / "data", self.root / "sock", self.root / "postgres.log"
        self.started = False

    @property
    def admin_url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.bindir / args[0]), *args[1:]]
        if self.as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, cwd=self.root, capture_output=True, text=True, timeout=timeout, check=False)

    def _check(self, proc: subprocess.CompletedProcess[str], what: str) -> None:
        if proc.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(
                f"{what} failed ({proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}\n{log}"
            )

    def start(self) -> None:
        self.sock.mkdir()
        if self.as_postgres:
            if shutil.which("runuser") is None:
                raise RuntimeError("running as root, and `runuser` (util-linux) is missing to drop to `postgres`")
            try:
                shutil.chown(self.root, "postgres", "postgres")
                shutil.chown(self.sock, "postgres", "postgres")
            except (LookupError, OSError) as exc:
                raise RuntimeError(f"running as root and cannot hand a temp dir to the `postgres` user: {exc}") from exc
        self._check(
            self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C"),
            "initdb",
        )
        for _ in range(3):  # the free port may be taken between choosing and binding it
            self.port = free_port()
            opts = (
                f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.sock} "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            )
            proc = self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", opts, "-w", "-t", "60", "start")
            if proc.returncode == 0:
                self.started = True
                return
        self._check(proc, "pg_ctl start")

    def stop(self) -> None:
        try:
            if self.started:
                proc = self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "30", "stop")
                if proc.returncode != 0:
                    self._kill()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def _kill(self) -> None:
        pidfile = self.data / "postmaster.pid"
        with contextlib.suppress(OSError, ValueError, IndexError):
            os.kill(int(pidfile.read_text().split()[0]), signal.SIGKILL)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """An admin URL (`postgresql+psycopg://postgres@HOST:PORT/postgres`, trust auth) of a PostgreSQL server.

    The machine's server on 127.0.0.1:5432 when it answers; otherwise a throwaway cluster (initdb +
    pg_ctl, see ThrowawayPostgres) on a free port, stopped and deleted at the end of the session.
    Set GRIDWATCH_TEST_PG=throwaway to always use a throwaway cluster (e.g. to test that path, or
    to keep tests off the machine's server); unset or `auto` means the default above. If neither
    works the run fails with what to install; it is never skipped.
    """
    mode = os.environ.get("GRIDWATCH_TEST_PG", "auto").strip().lower() or "auto"
    if mode not in ("auto", "throwaway"):
        pytest.fail(f"GRIDWATCH_TEST_PG={mode!r}: use 'auto' (default) or 'throwaway'", pytrace=False)
    if mode == "auto" and _pg_answers(MACHINE_PG):
        yield MACHINE_PG
        return
    bindir = _pg_bindir()
    if bindir is None:
        pytest.fail(
            ("GRIDWATCH_TEST_PG=throwaway" if mode == "throwaway" else "no PostgreSQL answers at 127.0.0.1:5432")
            + f", and no initdb to start a throwaway cluster; {PG_INSTALL_HINT}",
            pytrace=False,
        )
    cluster = ThrowawayPostgres(bindir)
    try:
        cluster.start()
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
        cluster.stop()
        pytest.fail(f"cannot start a throwaway PostgreSQL ({bindir}): {exc}\n{PG_INSTALL_HINT}", pytrace=False)
    try:
        yield cluster.admin_url
    finally:
        cluster.stop()
