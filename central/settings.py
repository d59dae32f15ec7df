"""Central's settings: the site config plus environment overrides (contract §4, §7)."""

from __future__ import annotations

import logging
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from gridwatch.config import load_site
from gridwatch.config.models import SiteConfig

log = logging.getLogger(__name__)

Role = Literal["all", "ingest", "api"]

STATIC_DIR = Path(__file__).resolve().parent / "console" / "static"

_WORKER_ID = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
_TRUE = frozenset({"1", "true", "yes", "on"})


class MissingSecretKey(ValueError):
    """GRIDWATCH_SECRET_KEY is not set and `--dev` was not given."""


MISSING_KEY_HELP = (
    "GRIDWATCH_SECRET_KEY is not set: central signs login tokens with it and will not start with a "
    "default or generated key. Set it to a long random string shared by every central process, e.g. "
    "GRIDWATCH_SECRET_KEY=$(python3 -c 'import secrets; print(secrets.token_urlsafe(48))'), "
    "or pass --dev for a throwaway key on a development machine"
)


def check_worker_id(worker: str) -> str:
    """An ingest worker id goes into the MQTT client id: 1-32 of letters, digits, '-' and '_'."""
    if not _WORKER_ID.match(worker):
        raise ValueError(f"ingest worker id {worker!r} must be 1-32 letters, digits, '-' or '_' (e.g. 1, 2, 3)")
    return worker


def parse_bind(bind: str) -> tuple[str, int]:
    """`HOST:PORT` (or `[v6]:PORT`) → (host, port); raises ValueError with what is wrong."""
    host, sep, port = bind.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"bind address {bind!r} is not HOST:PORT (e.g. 127.0.0.1:8080)")
    return host.strip("[]"), int(port)


def ensure_sqlite_dir(url: str) -> None:
    """Create the parent directory of a `sqlite:///relative/or/absolute.db` file (e.g. var/)."""
    if url.startswith("sqlite:///"):
        path = url.removeprefix("sqlite:///").split("?", 1)[0]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything `create_app` needs; build it with `Settings.from_site` or `Settings.load`."""

    site: SiteConfig
    secret_key: str
    bind: str = "127.0.0.1:8080"
    uplink_broker: str = "mqtt://127.0.0.1:1883"
    database_url: str = "sqlite:///var/central.db"
    tsdb_url: str = "sqlite:///var/tsdb.db"
    tsdb_token: str | None = None
    tsdb_org: str = "gridwatch"
    tsdb_bucket: str = "gridwatch"
    admin_password: str | None = field(default=None, repr=False)
    secret_key_ephemeral: bool = False
    role: Role = "all"
    dev: bool = False
    mqtt_identifier: str = ""
    # ingest through the MQTT 5 shared subscription `$share/gridwatch-central-{site}/…` so that
    # several processes split the uplink; always on for role "ingest", opt-in for role "all"
    shared_ingest: bool = False
    # stable id of this ingest worker ("" = none: a per-process client id with a clean session)
    ingest_worker: str = ""
    token_ttl_s: int = 12 * 3600
    cmd_timeout_s: float = 10.0
    tick_s: float = 1.0
    sse_ping_s: float = 15.0
    sse_queue_size: int = 256
    login_failures_per_minute: int = 5
    static_dir: Path | None = STATIC_DIR

    def __post_init__(self) -> None:
        if not self.mqtt_identifier:
            object.__setattr__(self, "mqtt_identifier", f"gridwatch-central-{self.site.site.id}")
        if self.role == "ingest" and not self.shared_ingest:
            object.__setattr__(self, "shared_ingest", True)
        if self.ingest_worker:
            check_worker_id(self.ingest_worker)

    @property
    def share_group(self) -> str:
        """The MQTT 5 shared-subscription group every ingest worker of this site joins."""
        return f"gridwatch-central-{self.site.site.id}"

    @classmethod
    def from_site(
        cls,
        site: SiteConfig,
        env: Mapping[str, str] | None = None,
        *,
        bind: str | None = None,
        role: Role = "all",
        dev: bool = False,
        worker: str | None = None,
    ) -> Settings:
        """Settings for a loaded site; `env` (default os.environ) overrides the file, `bind` overrides both.

        Raises MissingSecretKey (a ValueError) when GRIDWATCH_SECRET_KEY is unset and `dev` is False;
        with `dev` a key is generated for this process (and a warning says so). `worker` (else
        GRIDWATCH_INGEST_WORKER) is the stable ingest worker id; GRIDWATCH_INGEST_SHARED=1 makes a
        role "all" process join the shared subscription too.
        """
        env = os.environ if env is None else env
        central = site.central
        ingest_worker = (worker if worker is not None else env.get("GRIDWATCH_INGEST_WORKER") or "").strip()
        bind_value = bind or env.get("GRIDWATCH_CENTRAL_BIND") or central.bind
        parse_bind(bind_value)
        secret = env.get("GRIDWATCH_SECRET_KEY") or ""
        ephemeral = not secret
        if ephemeral:
            if not dev:
                raise MissingSecretKey(MISSING_KEY_HELP)
            secret = secrets.token_urlsafe(48)
            log.warning(
                "GRIDWATCH_SECRET_KEY is not set (--dev): signing tokens with a throwaway key generated for "
                "this process, so every login ends when central restarts; never run production like this"
            )
        elif len(secret) < 32 and not dev:
            log.warning("GRIDWATCH_SECRET_KEY is shorter than 32 characters; use a longer random key")
        return cls(
            site=site,
            secret_key=secret,
            secret_key_ephemeral=ephemeral,
            bind=bind_value,
            uplink_broker=env.get("GRIDWATCH_UPLINK_BROKER") or central.uplink_broker,
            database_url=env.get("GRIDWATCH_DATABASE_URL") or central.database_url,
            tsdb_url=env.get("GRIDWATCH_TSDB_URL") or central.tsdb.url,
            tsdb_token=env.get("GRIDWATCH_TSDB_TOKEN") or central.tsdb.token or None,
            tsdb_org=central.tsdb.org,
            tsdb_bucket=central.tsdb.bucket,
            admin_password=env.get("GRIDWATCH_ADMIN_PASSWORD") or None,
            role=role,
            dev=dev,
            shared_ingest=role == "ingest" or (env.get("GRIDWATCH_INGEST_SHARED") or "").lower() in _TRUE,
            ingest_worker=check_worker_id(ingest_worker) if ingest_worker else "",
        )

    @classmethod
    def load(
        cls,
        config: str | os.PathLike[str] | None = None,
        env: Mapping[str, str] | None = None,
        *,
        bind: str | None = None,
        role: Role = "all",
        dev: bool = False,
        worker: str | None = None,
    ) -> Settings:
        """Load the site file (`config`, else GRIDWATCH_CONFIG); raises ConfigError or ValueError."""
        env = os.environ if env is None else env
        path = config or env.get("GRIDWATCH_CONFIG")
        if not path:
            raise ValueError("no site config: pass --config FILE or set GRIDWATCH_CONFIG")
        site = load_site(path, env=dict(env))
        return cls.from_site(site, env, bind=bind, role=role, dev=dev, worker=worker)

    def with_(self, **changes: object) -> Settings:
        """A copy with some fields changed (tests, CLI)."""
        return replace(self, **changes)  # type: ignore[arg-type]
