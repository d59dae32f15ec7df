"""The cheap paths in edge/vision.py against the general ones they stand in for.

- `downscale_grey` (2×2 averages by halves, then bilinear) against one `cv2.resize(INTER_AREA)`;
- `observe()` (one downscale shared by both detectors) against each detector fed its own
  area-resized frame, as before;
- `TamperDetector(check_every=SHIFT_CHECK_EVERY)` (as edge/camera.py runs it: the scene-shift
  check on every third frame while all looks normal) against `check_every=1` (every check on every
  frame, the detector's default).
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.camera import SHIFT_CHECK_EVERY
from edge.vision import MotionDetector, TamperDetector, downscale_grey, observe

from . import FOOTAGE
from .test_vision import LOWER, _scene_frames

Frame = np.ndarray


@cache
def _footage() -> tuple[Frame, ...]:
    assert FOOTAGE.is_file(), f"missing test footage {FOOTAGE}"
    cap = cv2.VideoCapture(str(FOOTAGE))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    return tuple(frames)


def _area(frame: Frame, width: int) -> Frame:
    """The general path: grey, then one area resize to `width` (what the detectors did before)."""
    grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if frame.ndim == 3 else frame
    h, w = grey.shape[:2]
    if w <= width:
        return grey
    return cv2.resize(grey, (width, max(1, round(h * width / w))), interpolation=cv2.INTER_AREA)


@pytest.mark.parametrize("size", [(640, 360), (1280, 720), (2560, 1440)])
def test_downscale_by_halves_is_the_area_average(size: tuple[int, int]) -> None:
    for frame in _footage()[::25]:
        frame = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
        ours, ref = downscale_grey(frame, 320), _area(frame, 320)
        assert ours.shape == ref.shape
        assert np.abs(ours.astype(int) - ref).max() <= 1  # averages of averages: rounding only


@pytest.mark.parametrize("size", [(768, 432), (1920, 1080), (1024, 576), (1000, 700)])
def test_downscale_by_other_factors_is_within_a_grey_level_of_the_area_average(size: tuple[int, int]) -> None:
    diffs = []
    for frame in _footage()[::25]:
        frame = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
        ours, ref = downscale_grey(frame, 320), _area(frame, 320)
        assert ours.shape == ref.shape
        diffs.append(np.abs(ours.astype(int) - ref))
    every = np.concatenate([d.ravel() for d in diffs])
    assert every.mean() < 0.5
    assert np.percentile(every, 99) <= 3  # larger only on the sharpest edges


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    h=st.integers(1, 600),
    w=st.integers(1, 1500),
    channels=st.sampled_from([0, 3, 4]),
    width=st.sampled_from([160, 320]),
    seed=st.integers(0, 2**16),
)
def test_downscale_has_the_general_shape_and_stays_in_the_input_range(
    h: int, w: int, channels: int, width: int, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    shape = (h, w) if channels == 0 else (h, w, channels)
    frame = rng.integers(0, 256, shape, dtype=np.uint8)
    ours, ref = downscale_grey(frame, width), _area(frame, width)
    assert ours.dtype == np.uint8
    assert ours.shape == ref.shape
    grey = _area(frame, 10**6)  # grey at full size
    assert int(grey.min()) <= int(ours.min()) and int(ours.max()) <= int(grey.max())
    if w <= width:
        assert np.array_equal(ours, grey)
    # the detectors take the output as their input unchanged
    assert np.array_equal(downscale_grey(ours, width), ours)


@pytest.mark.parametrize("bad", [np.zeros((360, 640, 2), np.uint8), np.zeros((0, 0, 3), np.uint8)])
def test_malformed_frames_raise_and_leave_the_detectors_as_they_were(bad: Frame) -> None:
    frames = _scene_frames("intruder", 20)
    ts = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)
    plain_m, plain_t = MotionDetector(LOWER, 0.005), TamperDetector()
    hit_m, hit_t = MotionDetector(LOWER, 0.005), TamperDetector()
    for i, frame in enumerate(frames):
        if i == 12:
            with pytest.raises(cv2.error):
                downscale_grey(bad, 320)
            with pytest.raises(cv2.error):
                observe(bad, ts=ts, frame_no=i, motion=hit_m, tamper=hit_t)
        want = observe(frame, ts=ts, frame_no=i, motion=plain_m, tamper=plain_t)
        assert observe(frame, ts=ts, frame_no=i, motion=hit_m, tamper=hit_t) == want


@pytest.mark.parametrize("mask", [None, LOWER])
def test_observe_on_real_footage_matches_detectors_fed_area_resized_frames(
    mask: list[tuple[float, float]] | None,
) -> None:
    ts = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)
    motion, tamper = MotionDetector(mask, 0.005), TamperDetector(check_every=SHIFT_CHECK_EVERY)
    ref_motion, ref_tamper = MotionDetector(mask, 0.005), TamperDetector(check_every=1)
    ours, ref, states = [], [], set()
    for i, frame in enumerate(_footage()):
        obs = observe(frame, ts=ts, frame_no=i, motion=motion, tamper=tamper)
        ours.append(obs.motion_fraction)
        states.add(obs.tamper)
        ref.append(ref_motion.update(_area(frame, ref_motion.width)))
        states.add(ref_tamper.update(_area(frame, ref_tamper.width)))
    a, b = np.array(ours), np.array(ref)
    assert np.mean((a >= 0.005) == (b >= 0.005)) >= 0.99  # measured: every frame agrees
    assert np.abs(a - b).max() < 0.01
    assert states == {None}


@pytest.mark.parametrize("event", ["cover", "blind", "defocus", "move"])
@pytest.mark.parametrize("start", [10, 11, 12])
def test_sampled_shift_check_confirms_a_move_at_most_two_frames_later(event: str, start: int) -> None:
    frames = _scene_frames(event, 32, start=start)
    full, sampled = TamperDetector(), TamperDetector(check_every=SHIFT_CHECK_EVERY)
    every = [full.update(f) for f in frames]
    ours = [sampled.update(f) for f in frames]
    first_every = next(i for i, s in enumerate(every) if s is not None)
    first_ours = next(i for i, s in enumerate(ours) if s is not None)
    if event != "move":  # checked on every frame
        assert ours == every
    else:
        assert first_every <= first_ours <= first_every + SHIFT_CHECK_EVERY - 1
    # once seen, frame by frame as before; nothing before the event
    assert ours[first_ours:] == every[first_ours:]
    assert set(ours[:start]) == {None}
    needed = 5 if event == "move" else 3
    assert first_ours <= start + needed - 1 + SHIFT_CHECK_EVERY - 1


def test_sampled_shift_check_on_real_footage_sees_nothing_and_learns_the_same_baselines() -> None:
    full, sampled = TamperDetector(), TamperDetector(check_every=SHIFT_CHECK_EVERY)
    states = set()
    for frame in _footage():
        small = downscale_grey(frame, 320)
        states.add(full.update(small))
        states.add(sampled.update(small))
    assert states == {None}
    # not equal: the every-frame detector does not follow the few frames where a passing car made a
    # brief (never confirmed) "moved" candidate, and the sampled one did not look on some of them
    assert full.baseline_sharpness is not None
    assert sampled.baseline_sharpness == pytest.approx(full.baseline_sharpness, rel=0.01)


def test_check_every_must_be_positive() -> None:
    with pytest.raises(ValueError, match="check_every"):
        TamperDetector(check_every=0)


@pytest.mark.parametrize("step", [2, 3])
def test_observe_at_the_analysis_rate_on_real_footage(step: int) -> None:
    """At 5 fps the manager analyses every 2nd or 3rd frame of this 12.5 fps footage."""
    ts = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)
    motion, tamper = MotionDetector(None, 0.005), TamperDetector(check_every=SHIFT_CHECK_EVERY)
    obs = [observe(f, ts=ts, frame_no=i, motion=motion, tamper=tamper) for i, f in enumerate(_footage()[::step])]
    assert {o.tamper for o in obs} == {None}
    moving = np.array([o.motion for o in obs])
    assert not moving[: 50 // step].any()  # the empty wet road at the start
    assert 0.2 < moving.mean() < 0.8


def _general_motion_fraction(detector: MotionDetector, moved: Frame) -> float:
    """The general path for one thresholded difference: a full opening, then a full-frame masked count."""
    opened = cv2.morphologyEx(moved, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3)))
    assert detector._mask is not None
    return float(np.count_nonzero(cv2.bitwise_and(opened, detector._mask))) / detector._mask_area


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    mask=st.sampled_from([None, LOWER, [(0.1, 0.1), (0.4, 0.2), (0.3, 0.9)], [(0.0, 0.0), (1.0, 0.0), (1.0, 1.0)]]),
    density=st.sampled_from([0.0, 0.002, 0.02, 0.3]),
    blobs=st.integers(0, 4),
    seed=st.integers(0, 2**16),
)
def test_split_opening_and_box_count_match_the_general_path(
    mask: list[tuple[float, float]] | None, density: float, blobs: int, seed: int
) -> None:
    """MotionDetector opens as erode + dilate (the dilation skipped when the erosion leaves nothing) and
    counts only inside the mask's bounding box: the same fraction as morphologyEx + a full-frame count."""
    rng = np.random.default_rng(seed)
    background = np.full((180, 320), 100, np.uint8)
    frame = background.copy()
    frame[rng.random(frame.shape) < density] = 200  # speckle (single pixels: the opening removes them)
    for _ in range(blobs):
        x, y = int(rng.integers(0, 300)), int(rng.integers(0, 160))
        frame[y : y + int(rng.integers(2, 40)), x : x + int(rng.integers(2, 60))] = 220
    detector = MotionDetector(mask, 0.005, blur=1)  # blur 1: the thresholded difference is known exactly
    assert detector.update(background) == 0.0
    _, moved = cv2.threshold(cv2.absdiff(frame, background), detector.threshold, 255, cv2.THRESH_BINARY)
    want = _general_motion_fraction(detector, moved)
    got = detector.update(frame)
    if np.count_nonzero(cv2.morphologyEx(moved, cv2.MORPH_OPEN, detector._kernel)) > 0.7 * moved.size:
        assert got == 0.0  # "lightning": not motion
    else:
        assert got == want


@pytest.mark.parametrize("step", [1, 2, 3])
def test_sharpness_baseline_is_not_dragged_up_by_passing_cars(step: int) -> None:
    """The defocus check keeps a wide margin on the footage: a close car (sharp edges) pulled the followed
    baseline up until the empty road after it measured 0.244-0.251 of it, against a 0.25 threshold."""
    tamper = TamperDetector(check_every=SHIFT_CHECK_EVERY)
    ratios = []
    for frame in _footage()[::step]:
        small = downscale_grey(frame, tamper.width)
        base = tamper.baseline_sharpness
        assert tamper.update(small) is None
        if base is not None and tamper._learned >= tamper.learn_frames:
            sharp = float(cv2.meanStdDev(cv2.Laplacian(cv2.GaussianBlur(small, (3, 3), 0), cv2.CV_16S))[1][0, 0]) ** 2
            ratios.append(sharp / base)
    assert min(ratios) > 2 * tamper.defocus_ratio  # measured: 0.56 at every step, 0.26 before the clamp


@settings(max_examples=150, deadline=None)
@given(
    h=st.integers(2, 300),
    w=st.integers(2, 700),
    out_w=st.integers(1, 700),
    out_h=st.integers(1, 300),
    seed=st.integers(0, 2**16),
)
def test_sixteen_bit_bilinear_step_is_the_eight_bit_one_within_a_grey_level(
    h: int, w: int, out_w: int, out_h: int, seed: int
) -> None:
    """downscale_grey resizes its fractional remainder on a 16-bit copy (OpenCV's vectorised path):
    the same bilinear resize as the 8-bit one, rounded alike to within one grey level."""
    grey = np.random.default_rng(seed).integers(0, 256, (h, w), dtype=np.uint8)
    eight = cv2.resize(grey, (out_w, out_h), interpolation=cv2.INTER_LINEAR)
    sixteen = cv2.resize(grey.astype(np.uint16), (out_w, out_h), interpolation=cv2.INTER_LINEAR)
    assert int(sixteen.max()) <= 255
    assert np.abs(sixteen.astype(int) - eight).max() <= 1
