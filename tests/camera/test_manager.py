"""CameraManager against real RTSP from the simulator: motion, tamper, video loss, stats and snapshots."""

from __future__ import annotations

import time
from collections.abc import Iterator

import cv2
import numpy as np
import pytest

from edge.camera import CameraManager
from edge.vision_types import CameraObservation
from gridwatch.config.models import Device, SiteConfig, SiteInfo, Zone
from gridwatch.contract.enums import Family, ZoneKind
from simulators.camera import CameraSimulator

from . import FOOTAGE, Observations, free_port_pair

FENCE_MASK = [[(0.0, 0.35), (1.0, 0.35), (1.0, 1.0), (0.0, 1.0)]]
SIM_CAMERAS = ["cam-quiet", "cam-intruder", "cam-cover", "cam-blind", "cam-defocus", "cam-move", "cam-stop"]


def _site(devices: list[Device]) -> SiteConfig:
    zone = Zone(id="perim-north", kind=ZoneKind.PERIMETER, polygon=[(0, 0), (10, 0), (10, 1)])
    return SiteConfig(site=SiteInfo(id="test-site"), zones=[zone], devices=devices)


def _camera(camera_id: str, url: str, fps: float = 5) -> Device:
    return Device(id=camera_id, family=Family.CAMERA, zone="perim-north", url=url, fps=fps, motion_mask=FENCE_MASK)


def _ok_frames(obs: list[CameraObservation]) -> list[CameraObservation]:
    return [o for o in obs if o.video_ok]


@pytest.fixture(scope="module")
def sim() -> Iterator[CameraSimulator]:
    with CameraSimulator(SIM_CAMERAS, free_port_pair(), fps=10) as s:
        yield s


@pytest.fixture(scope="module")
def watched(sim: CameraSimulator) -> Iterator[tuple[CameraManager, Observations]]:
    observations = Observations()
    cameras = [_camera(c, sim.url(c)) for c in SIM_CAMERAS]
    manager = CameraManager(_site(cameras), "edge-test", cameras, observations)
    manager.start()
    yield manager, observations
    manager.stop()


def _warm(observations: Observations, camera_id: str, n: int = 12) -> int:
    """Wait until the camera has `n` good observations (detectors learned); return how many there are."""
    got = observations.wait_for(camera_id, lambda o: len(_ok_frames(o)) >= n, timeout=10)
    assert len(_ok_frames(got)) >= n, f"{camera_id}: only {len(got)} observations: {got[-3:]}"
    return len(got)


def test_quiet_scene_gives_no_motion_and_no_tamper(watched: tuple[CameraManager, Observations]) -> None:
    _, observations = watched
    got = observations.wait_for("cam-quiet", lambda o: len(_ok_frames(o)) >= 35, timeout=15)
    frames = _ok_frames(got)
    assert len(frames) >= 35
    assert not [o for o in frames if o.motion or o.tamper is not None]
    assert [o.frame_no for o in frames] == sorted({o.frame_no for o in frames})  # each frame analysed once


def test_intruder_gives_motion_inside_the_mask(
    sim: CameraSimulator, watched: tuple[CameraManager, Observations]
) -> None:
    _, observations = watched
    start = _warm(observations, "cam-intruder")
    assert not any(o.motion for o in observations.of("cam-intruder"))
    sim.inject("cam-intruder", "intruder", 4.0)
    got = observations.wait_for("cam-intruder", lambda o: sum(x.motion for x in o[start:]) >= 5, timeout=8)
    moving = [o for o in got[start:] if o.motion]
    assert len(moving) >= 5
    assert all(o.motion_fraction >= 0.005 and o.tamper is None for o in moving)


@pytest.mark.parametrize(
    ("camera_id", "event", "expected"),
    [("cam-cover", "cover", "covered"), ("cam-blind", "blind", "blinded"),
     ("cam-defocus", "defocus", "defocused"), ("cam-move", "move", "moved")],
)  # fmt: skip
def test_tamper_is_reported(
    sim: CameraSimulator, watched: tuple[CameraManager, Observations], camera_id: str, event: str, expected: str
) -> None:
    _, observations = watched
    start = _warm(observations, camera_id)
    sim.inject(camera_id, event, 6.0)
    got = observations.wait_for(camera_id, lambda o: any(x.tamper == expected for x in o[start:]), timeout=6)
    assert any(o.tamper == expected for o in got[start:]), [o.tamper for o in got[start:]]
    assert {o.tamper for o in got[start:]} <= {None, expected}


def test_stopped_stream_gives_video_loss_then_recovers(
    sim: CameraSimulator, watched: tuple[CameraManager, Observations]
) -> None:
    manager, observations = watched
    start = _warm(observations, "cam-stop")
    sim.inject("cam-stop", "stop", 5.0)
    got = observations.wait_for("cam-stop", lambda o: any(not x.video_ok for x in o[start:]), timeout=5)
    lost = [o for o in got[start:] if not o.video_ok]
    assert lost, "no video_ok=False within 5 s of the stream stopping"
    assert manager.stats()["cam-stop"]["last_frame_age_s"] >= 1.0
    n = len(got)
    got = observations.wait_for("cam-stop", lambda o: len(_ok_frames(o[n:])) >= 3, timeout=12)
    assert len(_ok_frames(got[n:])) >= 3, "frames did not come back after the stream resumed"


def test_stats_and_snapshot(watched: tuple[CameraManager, Observations]) -> None:
    manager, observations = watched
    _warm(observations, "cam-quiet")
    stats = manager.stats()
    assert set(stats) == set(SIM_CAMERAS)
    quiet = stats["cam-quiet"]
    assert quiet["connected"] is True
    assert quiet["fps_in"] > 0 and quiet["fps_analysed"] > 0
    assert quiet["last_frame_age_s"] is not None and quiet["last_frame_age_s"] < 1.5
    assert quiet["frames_dropped"] > 0  # the stream runs at 10 fps, analysis at 5
    jpeg = manager.snapshot("cam-quiet")
    assert jpeg is not None and jpeg[:2] == b"\xff\xd8"
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == (360, 640, 3)
    assert manager.snapshot("no-such-camera") is None


def test_unreachable_camera_reports_video_loss_and_reconnects() -> None:
    port = free_port_pair()  # nothing listens there
    observations = Observations()
    camera = _camera("cam-gone", f"rtsp://127.0.0.1:{port}/cam-gone")
    with CameraManager(_site([camera]), "edge-test", [camera], observations) as manager:
        got = observations.wait_for("cam-gone", lambda o: len(o) >= 2, timeout=6)
        stats = manager.stats()["cam-gone"]
        assert manager.snapshot("cam-gone") is None
    assert len(got) >= 2 and not any(o.video_ok for o in got)
    assert stats["connected"] is False and stats["reconnects"] >= 1 and stats["last_frame_age_s"] is None


def test_file_url_loops_real_footage_and_sees_the_cars() -> None:
    observations = Observations()
    camera = Device(id="cam-road", family=Family.CAMERA, url=str(FOOTAGE), fps=5)
    with CameraManager(_site([camera]), "edge-test", [camera], observations) as manager:
        got = observations.wait_for("cam-road", lambda o: sum(x.motion for x in o) >= 3, timeout=10)
        stats = manager.stats()["cam-road"]
    assert sum(o.motion for o in got) >= 3
    assert not any(o.motion for o in got[:15])  # the footage opens on an empty road (~4 s)
    assert stats["fps_in"] > 5  # paced at the file's 12.5 fps, not read as fast as it decodes
    assert stats["fps_in"] < 20


def test_zone_threshold_overrides_min_area_fraction(sim: CameraSimulator) -> None:
    zone = Zone(id="perim-north", kind=ZoneKind.PERIMETER, polygon=[(0, 0), (10, 0), (10, 1)],
                thresholds={"camera.motion": {"min_area_fraction": 0.5}})  # fmt: skip
    camera = _camera("cam-intruder", sim.url("cam-intruder"))
    site = SiteConfig(site=SiteInfo(id="test-site"), zones=[zone], devices=[camera])
    observations = Observations()
    with CameraManager(site, "edge-test", [camera], observations):
        start = _warm(observations, "cam-intruder", n=8)
        sim.inject("cam-intruder", "intruder", 2.0)
        time.sleep(2.5)
    got = observations.of("cam-intruder")[start:]
    assert any(o.motion_fraction > 0.005 for o in got)  # it moved …
    assert not any(o.motion for o in got)  # … but less than half the mask


def test_non_camera_device_is_refused() -> None:
    ir = Device(id="ir-1", family=Family.PERIMETER_IR)
    with pytest.raises(ValueError, match="not a camera"):
        CameraManager(_site([ir]), "edge-test", [ir], Observations())
