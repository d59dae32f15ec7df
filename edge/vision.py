"""Pure frame analysis (numpy/OpenCV): motion inside a mask, and camera tamper.

No threads, sockets or clocks here: `edge/camera.py` feeds frames in and stamps the time.
Frames are BGR (or grey) uint8 arrays of any size; both detectors work on a copy downscaled
to at most `ANALYSIS_WIDTH` pixels wide, so cost does not grow with the camera's resolution.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Literal

import cv2
import numpy as np
import numpy.typing as npt

from edge.vision_types import CameraObservation

__all__ = [
    "ANALYSIS_WIDTH",
    "MaskSpec",
    "MotionDetector",
    "Tamper",
    "TamperDetector",
    "downscale_grey",
    "mask_polygons",
    "observe",
    "video_lost",
]

Tamper = Literal["covered", "blinded", "defocused", "moved"]
ImagePoint = tuple[float, float]
# One polygon, or several (a Device's motion_mask), in 0..1 fractions of the image width and height.
MaskSpec = Sequence[ImagePoint] | Sequence[Sequence[ImagePoint]]
GreyImage = npt.NDArray[np.uint8]
ANALYSIS_WIDTH = 320


def mask_polygons(mask: MaskSpec | None) -> list[list[ImagePoint]]:
    """Normalise a mask spec to a list of polygons; [] means the whole image."""
    if not mask:
        return []
    first = mask[0]
    if isinstance(first[0], int | float):  # a single polygon: [(x, y), …]
        polygons = [[(float(p[0]), float(p[1])) for p in mask]]  # type: ignore[arg-type]
    else:
        polygons = [[(float(p[0]), float(p[1])) for p in poly] for poly in mask]  # type: ignore[index]
    for poly in polygons:
        if len(poly) < 3:
            raise ValueError(f"a mask polygon needs at least 3 points, got {poly}")
        if any(not (0.0 <= v <= 1.0) for pt in poly for v in pt):
            raise ValueError(f"mask points are fractions of the image (0..1), got {poly}")
    return polygons


def downscale_grey(frame: npt.NDArray[np.uint8], width: int) -> GreyImage:
    """A grey copy of a BGR (or grey) frame, at most `width` pixels wide, aspect kept.

    Converted to grey first, halved by 2×2 averaging while that stays at least `width` wide, then
    bilinear for the rest (less than 2×). Grey first because it is the cheapest order measured: the
    colour 2× area and bilinear paths cost 0.2-0.4 ms at 720p against 0.2 ms for the full-frame grey
    conversion plus 0.05 ms for the grey halvings. A single `cv2.resize(INTER_AREA)` to `width`
    costs 0.7 ms on a 768×432 frame and 0.45 ms on a 720p grey one on this machine (OpenCV's
    generic area path, for factors other than 2), most of a decode; its 2× path is vectorised and
    costs 0.04 ms at 720p. For frames `width` × 2^k wide (640, 1280, 2560 for 320) the result is
    the area average to within one grey level (averages of averages); other widths differ from it
    by a fraction of a grey level on average (tests/camera/test_vision_paths.py). A grey frame
    already `width` wide or narrower is returned as it is, so the detectors accept this function's
    output as their input.
    """
    grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if frame.ndim == 3 else frame
    h, w = grey.shape[:2]
    if w <= width:
        return np.asarray(grey, dtype=np.uint8)
    size = (width, max(1, round(h * width / w)))
    while w // 2 >= width and h >= 2:
        # an even crop (at most one edge row or column) keeps OpenCV on its exact 2× path
        h, w = h // 2, w // 2
        grey = cv2.resize(grey[: 2 * h, : 2 * w], (w, h), interpolation=cv2.INTER_AREA)
    if (w, h) != size:
        # the bilinear remainder on 16-bit copies: OpenCV's 8-bit bilinear resize by a fractional factor
        # takes its scalar path (0.9 ns an output pixel: 50 us for 384x216 -> 320x180 here), its 16-bit
        # one is vectorised (31 us with both conversions); the two differ by at most one grey level
        # (tests/camera/test_vision_paths.py), both round, and the values stay in 0..255
        grey = cv2.resize(grey.astype(np.uint16), size, interpolation=cv2.INTER_LINEAR).astype(np.uint8)
    return np.asarray(grey, dtype=np.uint8)


class MotionDetector:
    """Share of the masked area that moved, against a running-average background.

    Grey, downscaled, blurred; |frame − background| above `threshold` grey levels, opened to drop
    rain speckle and sensor noise, counted inside the mask. A change over more than
    `lightning_fraction` of the whole image (lights switched, lens covered, camera knocked) is not
    motion: the background is reset and the frame reports 0 (tamper detection reports those).
    """

    def __init__(
        self,
        mask: MaskSpec | None,
        min_area_fraction: float,
        *,
        threshold: int = 25,
        alpha: float = 0.1,
        blur: int = 5,
        lightning_fraction: float = 0.7,
        width: int = ANALYSIS_WIDTH,
    ) -> None:
        if not 0.0 < min_area_fraction < 1.0:
            raise ValueError(f"min_area_fraction must be in (0, 1), got {min_area_fraction}")
        self.polygons = mask_polygons(mask)
        self.min_area_fraction = min_area_fraction
        self.threshold, self.alpha, self.blur = threshold, alpha, blur | 1
        self.lightning_fraction = lightning_fraction
        self.width = width
        self._background: npt.NDArray[np.float32] | None = None
        self._mask: GreyImage | None = None
        self._mask_area = 0
        self._mask_box = (0, 0, 0, 0)  # x, y, w, h of the mask's pixels
        self._kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))

    def _build_mask(self, shape: tuple[int, int]) -> None:
        h, w = shape
        if not self.polygons:
            self._mask = np.full((h, w), 255, np.uint8)
        else:
            self._mask = np.zeros((h, w), np.uint8)
            pts = [np.array([[x * (w - 1), y * (h - 1)] for x, y in poly], np.int32) for poly in self.polygons]
            cv2.fillPoly(self._mask, pts, 255)
        self._mask_area = int(np.count_nonzero(self._mask))
        x, y, bw, bh = cv2.boundingRect(self._mask)
        self._mask_box = (x, y, bw, bh)

    def reset(self) -> None:
        """Forget the background (the next frame becomes it)."""
        self._background = None

    def update(self, frame: npt.NDArray[np.uint8]) -> float:
        """Feed one frame; the share (0..1) of the mask area that moved. The first frame returns 0."""
        grey = cv2.GaussianBlur(downscale_grey(frame, self.width), (self.blur, self.blur), 0)
        if self._mask is None or self._mask.shape != grey.shape:
            self._build_mask(grey.shape[:2])
            self._background = None
        if self._background is None:
            self._background = grey.astype(np.float32)
            return 0.0
        diff = cv2.absdiff(grey, cv2.convertScaleAbs(self._background))
        _, moved = cv2.threshold(diff, self.threshold, 255, cv2.THRESH_BINARY)
        # an opening (MORPH_OPEN) as its two halves: when the erosion leaves nothing (a quiet or
        # rain-speckled view, most frames) the dilation could only give nothing again, so skip it
        moved = cv2.erode(moved, self._kernel)
        count = cv2.countNonZero(moved)
        if count:
            moved = cv2.dilate(moved, self._kernel)
            count = cv2.countNonZero(moved)
        if count > self.lightning_fraction * moved.size:
            self._background = grey.astype(np.float32)
            return 0.0
        cv2.accumulateWeighted(grey, self._background, self.alpha)
        if self._mask_area == 0 or count == 0:
            return 0.0
        if self._mask_area == moved.size:  # no mask polygons (or one covering everything): all counts
            return count / self._mask_area
        assert self._mask is not None
        x, y, w, h = self._mask_box  # only the mask's bounding box can hold pixels inside the mask
        inside = cv2.bitwise_and(moved[y : y + h, x : x + w], self._mask[y : y + h, x : x + w])
        return cv2.countNonZero(inside) / self._mask_area


class TamperDetector:
    """Covered (dark, flat), blinded (bright, flat), defocused (sharpness far below the learned
    baseline) or moved (the scene shifted against a reference, by phase correlation).

    A state must hold for `confirm_frames` analysed frames in a row before it is reported, so one
    odd frame raises nothing; "moved" needs `move_confirm_frames` frames shifted by the same offset
    (within `steady_px`), so a large vehicle crossing the view is not taken for a knocked camera.
    Baselines are learned over the first `learn_frames` untampered
    frames and then follow the scene slowly, never while a tamper is being seen.

    The scene-shift check (a phase correlation, 0.18 ms at 160×90, the costliest step of the whole
    analysis) may run on every `check_every`-th frame only, while nothing is amiss; it always runs
    while learning and while any tamper state is a candidate or confirmed, and every other check
    runs on every frame. A moved camera is then first seen up to `check_every - 1` analysed frames
    later and confirmed frame by frame as with `check_every=1` (the default, every check on every
    frame): edge/camera.py uses 3, so "moved" is reported on the 5th to 7th analysed frame showing
    it (within 1.4 s at 5 fps; it was the 5th, 1.0 s); covered, blinded and defocused are unchanged
    (the 3rd, 0.6 s). The baselines follow the scene on every frame that shows no tamper.
    """

    FOLLOW = 0.02  # per analysed frame: how fast the baselines follow a slowly changing scene
    # the sharpness baseline follows each frame's sharpness clamped to within this factor of itself
    # (measured on the test footage: lowest empty-road sharpness 0.26 of the baseline without it, 0.56 with)
    SHARP_CLAMP = 1.5

    def __init__(
        self,
        *,
        dark_level: float = 35.0,
        bright_level: float = 220.0,
        flat_std: float = 12.0,
        defocus_ratio: float = 0.25,
        move_fraction: float = 0.03,
        confirm_frames: int = 3,
        move_confirm_frames: int = 5,
        steady_px: float = 1.5,
        learn_frames: int = 5,
        check_every: int = 1,
        width: int = 160,
    ) -> None:
        if check_every < 1:
            raise ValueError(f"check_every must be at least 1, got {check_every}")
        self.dark_level, self.bright_level, self.flat_std = dark_level, bright_level, flat_std
        self.defocus_ratio, self.move_fraction = defocus_ratio, move_fraction
        self.confirm_frames, self.learn_frames, self.width = confirm_frames, learn_frames, width
        self.move_confirm_frames, self.steady_px = move_confirm_frames, steady_px
        self.check_every = check_every
        self.reset()

    def reset(self) -> None:
        """Accept the current view as normal (after maintenance re-aimed or refocused the camera)."""
        self._sharpness: float | None = None
        self._reference: npt.NDArray[np.float32] | None = None
        self._learned = 0
        self._candidate: Tamper | None = None
        self._streak = 0
        self._window: npt.NDArray[np.float32] | None = None
        self._last_shift = (0.0, 0.0)
        self._candidate_shift = (0.0, 0.0)
        self._unchecked = 0  # frames since the scene-shift check last ran

    @property
    def baseline_sharpness(self) -> float | None:
        return self._sharpness

    def _shift(self, grey: npt.NDArray[np.float32]) -> tuple[float, float]:
        """How far (pixels at analysis size, dx and dy) the scene moved against the reference."""
        assert self._reference is not None
        if self._window is None or self._window.shape != grey.shape:
            self._window = np.asarray(cv2.createHanningWindow((grey.shape[1], grey.shape[0]), cv2.CV_32F), np.float32)
        # windowed copies: phaseCorrelate(a, b, window) was seen scaling `a` in place (OpenCV 4.x)
        window = self._window
        (dx, dy), response = cv2.phaseCorrelate(self._reference * window, grey * window)
        if response < 0.05:  # no coherent peak: the scene changed, not shifted
            return 0.0, 0.0
        return float(dx), float(dy)

    def _classify(self, small: GreyImage, full: bool) -> tuple[Tamper | None, float]:
        """The state this frame shows (the shift only looked for if `full`), and its sharpness."""
        self._last_shift = (0.0, 0.0)
        mean, std = cv2.meanStdDev(small)
        m, s = float(mean[0, 0]), float(std[0, 0])
        # variance of the Laplacian; integer Laplacian of uint8 and a double sum (numpy's float32 var was slower)
        sharp = float(cv2.meanStdDev(cv2.Laplacian(cv2.GaussianBlur(small, (3, 3), 0), cv2.CV_16S))[1][0, 0]) ** 2
        if s < self.flat_std and m < self.dark_level:
            return "covered", sharp
        if s < self.flat_std and m > self.bright_level:
            return "blinded", sharp
        if self._learned < self.learn_frames:
            return None, sharp
        assert self._sharpness is not None
        if sharp < self.defocus_ratio * self._sharpness:
            return "defocused", sharp
        if not full:
            return None, sharp
        shift = self._shift(small.astype(np.float32))
        if np.hypot(*shift) > self.move_fraction * small.shape[1]:
            self._last_shift = shift
            return "moved", sharp
        return None, sharp

    def update(self, frame: npt.NDArray[np.uint8]) -> Tamper | None:
        """Feed one frame; the confirmed tamper state, or None."""
        small = downscale_grey(frame, self.width)
        if self._reference is not None and self._reference.shape != small.shape:
            self.reset()
        self._unchecked += 1
        full = self._candidate is not None or self._learned < self.learn_frames or self._unchecked >= self.check_every
        state, sharp = self._classify(small, full)
        if full:
            self._unchecked = 0
        if state is None:
            if self._learned < self.learn_frames:
                # learn: the mean sharpness of the first frames, the latest frame as the reference
                prev = self._sharpness or 0.0
                self._sharpness = prev + (sharp - prev) / (self._learned + 1)
                self._learned += 1
                self._reference = small.astype(np.float32)
            else:
                assert self._sharpness is not None and self._reference is not None
                # followed through a clamp: a close car (sharp edges, 2-4x the empty road) pulls the baseline
                # up by at most FOLLOW * (SHARP_CLAMP - 1) a frame, so the empty road after it is not "defocused"
                base = self._sharpness
                clamped = min(max(sharp, base / self.SHARP_CLAMP), base * self.SHARP_CLAMP)
                self._sharpness += self.FOLLOW * (clamped - base)
                cv2.accumulateWeighted(small, self._reference, self.FOLLOW)
        # a knocked camera shifts the scene by the same offset frame after frame; a large object crossing
        # the view (a car filling a third of it) can pull the correlation peak, but never steadily
        steady = (
            state != "moved"
            or np.hypot(self._last_shift[0] - self._candidate_shift[0], self._last_shift[1] - self._candidate_shift[1])
            <= self.steady_px
        )
        if state is not None and state == self._candidate and steady:
            self._streak += 1
        else:
            self._candidate, self._streak, self._candidate_shift = state, 1, self._last_shift
        needed = self.move_confirm_frames if state == "moved" else self.confirm_frames
        return state if state is not None and self._streak >= needed else None


def observe(
    frame: npt.NDArray[np.uint8],
    *,
    ts: datetime,
    frame_no: int,
    motion: MotionDetector,
    tamper: TamperDetector,
) -> CameraObservation:
    """Run both detectors on one frame. While the image is tampered, motion is not reported (not trusted)."""
    # one grey downscale serves both detectors (each would otherwise convert and shrink the full frame)
    small = downscale_grey(frame, max(motion.width, tamper.width))
    fraction = motion.update(small)
    state = tamper.update(small)
    return CameraObservation(
        ts=ts,
        frame_no=frame_no,
        video_ok=True,
        motion_fraction=fraction,
        motion=state is None and fraction >= motion.min_area_fraction,
        tamper=state,
    )


def video_lost(ts: datetime, frame_no: int) -> CameraObservation:
    """The observation for a camera that sent no frame."""
    return CameraObservation(ts=ts, frame_no=frame_no, video_ok=False, motion_fraction=0.0, motion=False, tamper=None)
