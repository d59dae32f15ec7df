"""Camera analysis against the decoding it rides on, per frame, on real footage, in the same run.

Source: ../shared/data/video/car-detection.mp4 (H.264, 768×432, rain speckle and passing cars).
The pip OpenCV has no H.264 encoder, so the 720p main stream and the 640×360 sub-stream are that
footage rescaled and written with cv2.VideoWriter (MPEG-4 part 2, `mp4v`); the H.264 file itself
is measured too. Each pass decodes the clip from the file again:

  limit: decode + resize to 320 px wide (the least any analysis does);
  ours:  decode + edge.vision.observe (motion inside a mask + tamper), as edge/camera.py runs it,
         on every decoded frame, so each figure is the cost per *analysed* frame.

As in edge/camera.py, the tamper scene-shift check (a phase correlation) runs on every
`SHIFT_CHECK_EVERY`-th frame while the view looks normal and on every frame while a tamper is a
candidate (here: whenever a passing car pulls the correlation); every other step runs on every
frame. "ours" is therefore the cost amortised over this real sequence of 150 frames with cars
coming and going, not the cost of one frame with every check.

The limit's resize is `cv2.resize` with INTER_LINEAR, the cheapest interpolating resize OpenCV has.
It used INTER_AREA until the analysis stopped using it by fractional factors: a 768 → 320 area
resize of the colour frame costs 1.6 ms, more than the decode, and a limit that slow flattered
every analysis measured against it. Limit and analysis passes alternate (best of five each), so
a neighbour's load on this shared machine hits both alike.

Why "ours" minus the limit (~0.35 ms at 768×432) is more than observe() minus a resize on frames
already in memory (~0.25 ms), measured by main-thread CPU time inside these passes: the limit's
resize gets cheaper here (0.16 vs 0.20 ms: the frame was just written by the decoder, and a 2.4×
bilinear resize reads only the rows it samples, where the grey conversion reads every pixel),
observe() a little dearer (0.49 vs 0.45 ms), and FFmpeg's decoder threads use 0.02-0.06 ms more
alongside the analysis. The pass is what edge/camera.py runs per analysed frame (same mask,
detectors, `SHIFT_CHECK_EVERY`, OpenCV pool, the decoded array handed over uncopied); the edge
analyses every 2nd-3rd frame at 5 fps, which changes nothing measurable (the shift check runs
on 37 % of frames either way).

Costs are CPU time of this process (decoder threads included), so "per core" means per core.
Both passes run with OpenCV's worker pool set as a CameraManager sets it (`OPENCV_THREADS`).
"""

from __future__ import annotations

import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bench.run import Row

SOURCE = (
    next(
        (p for p in (Path(__file__).resolve().parents[2] / "shared", Path("/work/shared")) if p.is_dir()),
        Path(__file__).resolve().parents[2] / "shared",
    )
    / "data"
    / "video"
    / "car-detection.mp4"
)
FPS = 5  # the analysis rate of a camera (configs: `fps: 5`)
FRAMES = 150


def _write_clip(path: Path, size: tuple[int, int], frames: int) -> Path:
    import cv2

    cap = cv2.VideoCapture(str(SOURCE))
    out = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), 12.5, size)
    if not cap.isOpened() or not out.isOpened():
        raise RuntimeError(f"cannot read {SOURCE} or write {path} with OpenCV")
    n = 0
    while n < frames:
        ok, frame = cap.read()
        if not ok:
            cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            continue
        out.write(cv2.resize(frame, size, interpolation=cv2.INTER_LINEAR))
        n += 1
    cap.release()
    out.release()
    return path


def _pass(path: Path, frames: int, analyse: bool) -> float:
    """CPU seconds per frame to decode `frames` frames of `path` and resize them (or analyse them)."""
    import cv2
    import numpy as np

    from edge.camera import SHIFT_CHECK_EVERY
    from edge.vision import MotionDetector, TamperDetector, observe

    motion = MotionDetector([[(0.0, 0.35), (1.0, 0.35), (1.0, 1.0), (0.0, 1.0)]], 0.005)
    tamper = TamperDetector(check_every=SHIFT_CHECK_EVERY)
    now = datetime.now(UTC)
    cap = cv2.VideoCapture(str(path))
    ok, frame = cap.read()  # open and first frame (keyframe) outside the timing
    if not ok:
        raise RuntimeError(f"cannot decode {path}")
    n = 0
    t0 = time.process_time()
    while n < frames:
        ok, frame = cap.read()
        if not ok:
            break
        if analyse:
            observe(np.asarray(frame, np.uint8), ts=now, frame_no=n, motion=motion, tamper=tamper)
        else:
            h, w = frame.shape[:2]
            cv2.resize(frame, (320, round(h * 320 / w)), interpolation=cv2.INTER_LINEAR)
        n += 1
    cpu = time.process_time() - t0
    cap.release()
    return cpu / max(n, 1)


def _best(path: Path, frames: int, repeat: int = 5) -> tuple[float, float]:
    """Best (limit, ours) CPU seconds per frame over `repeat` alternating passes."""
    base, ours = [], []
    for _ in range(repeat):
        base.append(_pass(path, frames, analyse=False))
        ours.append(_pass(path, frames, analyse=True))
    return min(base), min(ours)


def bench_camera() -> list[Row]:
    import cv2

    from edge.camera import OPENCV_THREADS

    threads = cv2.getNumThreads()
    cv2.setNumThreads(OPENCV_THREADS)  # as in the edge's camera process, for both passes
    try:
        return _rows()
    finally:
        cv2.setNumThreads(threads)


def _rows() -> list[Row]:
    from bench.run import Row

    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        main = _write_clip(Path(tmp) / "main-720p.mp4", (1280, 720), FRAMES)
        sub = _write_clip(Path(tmp) / "sub-360p.mp4", (640, 360), FRAMES)
        for label, path in (
            ("720p main stream (mp4v)", main),
            ("768×432 H.264 source file", SOURCE),
        ):
            base, ours = _best(path, FRAMES)
            added = (ours - base) / base * 100
            rows.append(
                Row(
                    f"camera: decode + analysis per {label} frame "
                    f"(analysis adds {added:.0f}% to decode+resize; target ≤ 25%)",
                    ours * 1000,
                    base * 1000,
                    "CPU ms",
                    "decode + resize to 320 wide, same frames",
                    higher_is_better=False,
                )
            )
        base, ours = _best(sub, FRAMES)
        rows.append(
            Row(
                f"camera: 640×360 sub-streams per core at {FPS} fps (decode + analysis)",
                1 / (FPS * ours),
                1 / (FPS * base),
                "streams",
                "decode + resize only, same frames",
            )
        )
    return rows
