"""Frame analysis on synthetic numpy frames and on real footage (no network)."""

from __future__ import annotations

from datetime import UTC, datetime

import cv2
import numpy as np
import pytest

from edge.vision import MotionDetector, TamperDetector, mask_polygons, observe, video_lost
from simulators.scene import ActiveEvent, SensorNoise, apply_events, fence_background, seed_for

from . import FOOTAGE

LOWER = [(0.0, 0.35), (1.0, 0.35), (1.0, 1.0), (0.0, 1.0)]
UPPER = [(0.0, 0.0), (1.0, 0.0), (1.0, 0.3), (0.0, 0.3)]


def _scene_frames(event: str | None, n: int, start: int = 10, seconds: float = 6.0) -> list[np.ndarray]:
    """n frames at 5 fps of the fence scene; `event` starts at frame `start`, through a JPEG round trip."""
    bg = fence_background(640, 360, seed_for("cam-test"))
    noise = SensorNoise(640, 360, 7)
    frames = []
    for i in range(n):
        now = (i - start) * 0.2
        events = [ActiveEvent(event, 0.0, seconds)] if event is not None and i >= start else []  # type: ignore[arg-type]
        frame = apply_events(noise.add(bg), events, now)
        assert frame is not None
        _, jpeg = cv2.imencode(".jpg", frame, [int(cv2.IMWRITE_JPEG_QUALITY), 85])
        frames.append(cv2.imdecode(jpeg, cv2.IMREAD_COLOR))
    return frames


def test_white_block_in_mask_is_motion_and_outside_is_not() -> None:
    inside = MotionDetector(LOWER, 0.005)
    outside = MotionDetector(UPPER, 0.005)
    blank = np.zeros((360, 640, 3), np.uint8)
    block = blank.copy()
    block[250:330, 300:360] = 255  # 80×60 px in the lower part of the image
    for det in (inside, outside):
        assert det.update(blank) == 0.0
        assert det.update(blank) == 0.0
    assert inside.update(block) > 0.02
    assert outside.update(block) == 0.0


def test_quiet_fence_scene_has_no_motion_over_40_frames() -> None:
    det = MotionDetector(LOWER, 0.005)
    fractions = [det.update(f) for f in _scene_frames(None, 40)]
    assert max(fractions) < 0.001


def test_intruder_walking_across_is_motion_in_the_fence_mask() -> None:
    det = MotionDetector(LOWER, 0.005)
    tamper = TamperDetector()
    ts = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)
    obs = [
        observe(f, ts=ts, frame_no=i, motion=det, tamper=tamper) for i, f in enumerate(_scene_frames("intruder", 40))
    ]
    assert not any(o.motion for o in obs[:10])
    moving = [o for o in obs[10:] if o.motion]
    assert len(moving) >= 20
    assert all(o.tamper is None and o.video_ok for o in obs)


def test_intruder_above_the_mask_is_not_motion() -> None:
    det = MotionDetector([(0.0, 0.0), (1.0, 0.0), (1.0, 0.2), (0.0, 0.2)], 0.005)  # the sky only
    fractions = [det.update(f) for f in _scene_frames("intruder", 40)]
    assert max(fractions) < 0.005


@pytest.mark.parametrize(
    ("event", "expected"),
    [("cover", "covered"), ("blind", "blinded"), ("defocus", "defocused"), ("move", "moved")],
)
def test_tamper_events_are_classified(event: str, expected: str) -> None:
    det = TamperDetector()
    states = [det.update(f) for f in _scene_frames(event, 30)]
    assert set(states[:10]) == {None}  # learning and the quiet scene
    assert states[-10:] == [expected] * 10


def test_one_dark_frame_is_not_a_tamper() -> None:
    det = TamperDetector()
    frames = _scene_frames(None, 15)
    frames[10] = np.zeros_like(frames[10])
    assert [det.update(f) for f in frames] == [None] * 15


def test_sudden_whole_image_change_is_not_motion() -> None:
    det = MotionDetector(None, 0.005)
    frames = _scene_frames("cover", 15)
    fractions = [det.update(f) for f in frames]
    assert max(fractions) == 0.0


def test_mask_accepts_one_polygon_or_several_and_rejects_bad_points() -> None:
    assert mask_polygons(LOWER) == [LOWER]
    assert mask_polygons([LOWER, UPPER]) == [LOWER, UPPER]
    assert mask_polygons(None) == []
    with pytest.raises(ValueError, match="fractions"):
        mask_polygons([(0.0, 0.0), (2.0, 0.0), (1.0, 1.0)])
    with pytest.raises(ValueError, match="3 points"):
        mask_polygons([[(0.0, 0.0), (1.0, 0.0)]])


def test_video_lost_observation() -> None:
    ts = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)
    obs = video_lost(ts, 12)
    assert (obs.video_ok, obs.motion, obs.tamper, obs.frame_no) == (False, False, None, 12)


def test_real_footage_motion_when_cars_cross_and_quiet_between() -> None:
    """car-detection.mp4 (CC BY 4.0, Intel): rain speckle throughout, cars crossing now and then."""
    assert FOOTAGE.is_file(), f"missing test footage {FOOTAGE}"
    cap = cv2.VideoCapture(str(FOOTAGE))
    motion = MotionDetector(None, 0.005)
    tamper = TamperDetector()
    fractions: list[float] = []
    states = set()
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        fractions.append(motion.update(frame))
        states.add(tamper.update(frame))
    cap.release()
    assert len(fractions) > 300
    moving = np.array(fractions) >= 0.005
    # the footage opens on an empty wet road for ~4 s: rain speckle alone must not count as motion
    assert not moving[:50].any()
    # and each car's passage is a run of at least 2 s (25 frames) of motion
    runs, length = [], 0
    for m in moving:
        length = length + 1 if m else 0
        if length == 25:
            runs.append(True)
    assert len(runs) >= 3
    assert 0.2 < moving.mean() < 0.8  # quiet stretches between the cars
    assert states == {None}  # a car filling the view is neither a covered nor a moved camera
