"""Run a private Mosquitto: generated config, per-user passwords and ACLs, persistence.

Used by `gridwatch demo` (the embedded broker) and by the test fixtures, which restart and
cut it mid-stream. Mosquitto comes from Debian's package (scripts/setup.sh installs it).
"""

from __future__ import annotations

import contextlib
import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path


class BrokerError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.2):
        return True
    return False


@dataclass
class BrokerUser:
    name: str
    password: str
    acl: list[str] = field(default_factory=list)  # Mosquitto acl_file lines, e.g. "topic readwrite site/#"


def edge_acl(edge_id: str) -> list[str]:
    """An edge reads its devices and may publish only under its own uplink prefix (and read its cmds)."""
    return [
        "topic read site/#",
        "topic read $SYS/#",
        f"topic write gridwatch/v1/+/{edge_id}/#",
        f"topic read gridwatch/v1/+/{edge_id}/cmd/#",
    ]


# Central's ingest workers subscribe through `$share/gridwatch-central-{site}/gridwatch/v1/…`.
# Mosquitto 2.0 checks a shared subscription, and each delivery, against the topic without its
# `$share/{group}/` prefix, so `topic read gridwatch/v1/#` is what allows it; a `$share/#` line
# would let the SUBSCRIBE through yet deliver nothing (measured with Mosquitto 2.0.11,
# tests/central_ingest/test_shared_ingest.py).
# `gridwatch/central/…` is central's own: its processes relay the live stream there (central/relay.py)
CENTRAL_ACL = ["topic read gridwatch/v1/#", "topic write gridwatch/v1/+/+/cmd/#", "topic readwrite gridwatch/central/#"]
DEVICES_ACL = ["topic readwrite site/#"]
ADMIN_ACL = ["topic readwrite #"]


class Mosquitto:
    """A Mosquitto process on 127.0.0.1:`port` with its own config, password file, ACL and data dir.

    `host` and `launcher` are for fault tests that put the broker in a network namespace of its
    own: it listens on `host` and is started as `launcher + [mosquitto, -c, conf]` (e.g. nsenter).
    `autosave_s` is Mosquitto's `autosave_interval`: what a SIGKILL can lose is what arrived since
    the last save (fault tests set it long to lose everything queued).
    """

    def __init__(
        self,
        workdir: Path,
        port: int | None = None,
        users: list[BrokerUser] | None = None,
        *,
        host: str = "127.0.0.1",
        launcher: tuple[str, ...] = (),
        autosave_s: int = 1,
    ) -> None:
        self.workdir = Path(workdir)
        self.autosave_s = autosave_s
        self.host = host
        self.launcher = launcher
        self.port = port or free_port()
        self.users: dict[str, BrokerUser] = {}
        self.proc: subprocess.Popen[bytes] | None = None
        for user in users or [BrokerUser("admin", _secret(), ADMIN_ACL)]:
            self.users[user.name] = user

    # -- users -------------------------------------------------------------------------------
    def add_user(self, name: str, acl: list[str], password: str | None = None) -> str:
        """Add (or replace) a user and reload the broker if it runs; returns the user's URL."""
        self.users[name] = BrokerUser(name, password or _secret(), acl)
        if self.running:
            self._write_auth()
            assert self.proc is not None
            self.proc.send_signal(signal.SIGHUP)  # Mosquitto rereads password and ACL files
            time.sleep(0.2)
        return self.url(name)

    def url(self, user: str = "admin") -> str:
        u = self.users[user]
        return f"mqtt://{u.name}:{u.password}@{self.host}:{self.port}"

    # -- process -----------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _write_auth(self) -> None:
        passwd = self.workdir / "passwd"
        passwd.write_text("")
        exe = shutil.which("mosquitto_passwd")
        if exe is None:
            raise BrokerError("mosquitto_passwd not found: run scripts/setup.sh (installs Debian's mosquitto)")
        for user in self.users.values():
            subprocess.run([exe, "-b", str(passwd), user.name, user.password], check=True, capture_output=True)
        lines = []
        for user in self.users.values():
            lines.append(f"user {user.name}")
            lines.extend(user.acl)
            lines.append("")
        (self.workdir / "acl").write_text("\n".join(lines))

    def _write_config(self) -> Path:
        data = self.workdir / "data"
        data.mkdir(parents=True, exist_ok=True)
        conf = self.workdir / "mosquitto.conf"
        conf.write_text(
            "\n".join(
                [
                    f"listener {self.port} {self.host}",
                    # stay the invoking user: as root Mosquitto would drop to 'mosquitto',
                    # which cannot read our private work directory
                    f"user {getpass.getuser()}",
                    "allow_anonymous false",
                    f"password_file {self.workdir / 'passwd'}",
                    f"acl_file {self.workdir / 'acl'}",
                    "persistence true",
                    f"persistence_location {data}/",
                    f"autosave_interval {self.autosave_s}",
                    # the default 1,000 queued messages per client loses data for slow QoS 1
                    # subscribers (MEASURED.md); an edge outage under load needs far more
                    "max_queued_messages 1000000",
                    "max_inflight_messages 1000",
                    "max_keepalive 120",
                    "persistent_client_expiration 7d",
                    "log_dest stderr",
                    "log_type error",
                    "log_type warning",
                    "log_type notice",
                    "connection_messages false",
                    "",
                ]
            )
        )
        return conf

    def start(self, timeout: float = 10.0) -> None:
        if self.running:
            return
        exe = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None)
        if exe is None:
            raise BrokerError("mosquitto not found: run scripts/setup.sh (installs Debian's mosquitto package)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._write_auth()
        conf = self._write_config()
        log = (self.workdir / "mosquitto.log").open("ab")
        argv = [*self.launcher, exe, "-c", str(conf)]
        self.proc = subprocess.Popen(argv, stdout=log, stderr=log, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = (self.workdir / "mosquitto.log").read_text(errors="replace")[-2000:]
                raise BrokerError(f"mosquitto exited with {self.proc.returncode} on port {self.port}:\n{tail}")
            if port_open(self.port, self.host):
                return
            time.sleep(0.05)
        self.stop()
        raise BrokerError(f"mosquitto did not listen on {self.host}:{self.port} within {timeout} s")

    def stop(self, timeout: float = 10.0) -> None:
        """Stop cleanly (SIGTERM: Mosquitto saves its persistence file)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill(self) -> None:
        """SIGKILL: a crash, not a shutdown."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def restart(self, down_s: float = 0.0) -> None:
        self.stop()
        if down_s:
            time.sleep(down_s)
        self.start()

    def __enter__(self) -> Mosquitto:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _secret() -> str:
    return os.urandom(12).hex()
