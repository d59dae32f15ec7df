"""Shared fixtures: real services on free ports, started once per session and stopped at the end.

A service that cannot start fails the run with what to install; nothing is skipped quietly.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gridwatch.broker import ADMIN_ACL, CENTRAL_ACL, DEVICES_ACL, BrokerError, BrokerUser, Mosquitto

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"
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
