"""DeviceContext.from_config and device_topics on the demo site (contract §2 default topics)."""

from __future__ import annotations

from pathlib import Path

import pytest

import drivers
from drivers import DeviceContext
from gridwatch.config import Device, SiteConfig, load_site
from gridwatch.contract import Family

DEMO_SITE = Path(__file__).resolve().parents[2] / "configs" / "demo-site.yaml"


@pytest.fixture(scope="module")
def site() -> SiteConfig:
    return load_site(DEMO_SITE)


def test_every_demo_device_gets_a_context(site: SiteConfig) -> None:
    assert site.devices
    for device in site.devices:
        ctx = DeviceContext.from_config(device)
        assert (ctx.id, ctx.family, ctx.format, ctx.topic) == (device.id, device.family, device.format, device.topic)
        assert len(ctx.contact_id) == len(device.contact_id)


def test_contact_id_panel_map_comes_from_config(site: SiteConfig) -> None:
    south, west = site.device("panel-s"), site.device("panel-w")
    assert south is not None and west is not None
    ctx = DeviceContext.from_config(south)
    assert ctx.format == "contact_id"
    assert ctx.contact_id[("1234", 1)] == ("ir-s-01", 1)
    assert DeviceContext.from_config(west).contact_id[("1235", 6)] == ("ir-w-03", 2)


def test_contexts_are_hashable_and_comparable(site: SiteConfig) -> None:
    contexts = {DeviceContext.from_config(d) for d in site.devices}
    assert len(contexts) == len(site.devices)


def test_default_topics_per_family(site: SiteConfig) -> None:
    sid = site.site.id
    expected = {
        Family.PERIMETER_IR: ["event"],
        Family.ACCESS: ["event"],
        Family.RTLS: ["positions"],
        Family.WRISTBAND: ["telemetry", "event"],
        Family.CAMERA: ["event"],
    }
    folder = {Family.PERIMETER_IR: "perimeter"}
    for device in site.devices:
        base = f"site/{sid}/{folder.get(device.family, device.family.value)}/{device.id}"
        want = [f"{base}/{kind}" for kind in expected[device.family]] + [f"{base}/status"]
        assert drivers.device_topics(sid, device) == want
        assert drivers.device_topics(sid, DeviceContext.from_config(device)) == want


def test_topic_override_replaces_the_data_topic_and_keeps_status_beside_it() -> None:
    device = Device(id="ir-9", family=Family.PERIMETER_IR, topic="vendor/fence/ir-9/alarm")
    assert drivers.device_topics("s1", device) == ["vendor/fence/ir-9/alarm", "vendor/fence/ir-9/status"]
    band = Device(id="wb-9", family=Family.WRISTBAND, topic="gw/wb-9/data")
    assert drivers.device_topics("s1", band) == ["gw/wb-9/data", "gw/wb-9/event", "gw/wb-9/status"]
