"""Camera capture and analysis on the edge: per camera a capture thread and an analysis thread.

The capture thread reads as fast as the stream delivers (so FFmpeg's buffers never fill and
the picture never lags) and keeps only the latest frame in a one-slot mailbox; frames the analyser
never looked at are counted as dropped, which is expected whenever the stream's rate is above the
device's analysis `fps`. The analysis thread wakes at `fps`, runs `edge.vision.observe` on the
newest frame and hands the `CameraObservation` to `on_observation` (from that thread). When frames
stop it sends `video_ok=False` observations once a second while the capture thread reconnects
with backoff.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from edge.vision import MotionDetector, TamperDetector, observe, video_lost
from edge.vision_types import CameraObservation
from gridwatch.clock import Clock, SystemClock
from gridwatch.config.models import Device, SiteConfig

__all__ = ["FFMPEG_OPTIONS", "OPENCV_THREADS", "SHIFT_CHECK_EVERY", "CameraManager", "ObservationCallback"]

log = logging.getLogger("gridwatch.edge.camera")

ObservationCallback = Callable[[str, CameraObservation], None]
# Low-latency FFmpeg input options (MEASURED.md: first RTSP frame in ~0.2 s instead of ~1.5 s).
# OpenCV reads them from the process environment when a capture opens. They are for network streams
# only: on an H.264 *file* with B-frames, `low_delay` and the tiny probe size garble the decoded
# frames (measured on car-detection.mp4: 5-60 % of the image "moved" on an empty road), so files
# are opened with the variable unset. One lock serialises every open that touches the variable.
FFMPEG_OPTIONS = "rtsp_transport;tcp|fflags;nobuffer|flags;low_delay|analyzeduration;100000|probesize;32768"
OPEN_TIMEOUT_MS = 5000
READ_TIMEOUT_MS = 3000
BACKOFF_S = (0.5, 1.0, 2.0, 4.0, 8.0, 15.0)
# The tamper scene-shift check (a phase correlation, the costliest step) on every 3rd analysed frame
# while the view looks normal: "moved" is reported up to 2 frames later (edge/vision.py, TamperDetector).
# Not more: the sharpness baseline follows every frame not seen as tampered, so the less often the
# shift check looks, the more frames of a passing car (briefly "moved") it follows; with 4 or 5 the
# empty road after a close car in the test footage read as defocused.
SHIFT_CHECK_EVERY = 3
# OpenCV's worker pool splits each call into stripes and its workers spin-wait between calls; on
# 320×180 frames that buys nothing and costs CPU (measured on this 2-core machine: 4 % of the
# analysis under load, up to 0.1–0.3 ms a frame when the cores were idle enough to spin). The
# cameras already run in parallel, an analysis thread each, so a manager turns the pool off for
# its process when it starts. FFmpeg's decoder threads are its own: decoding is unaffected.
OPENCV_THREADS = 1
VIDEO_LOSS_AFTER_S = 2.0  # no new frame for this long (or 3 analysis periods, if longer) = video lost
STATS_WINDOW_S = 2.0
_ENV = "OPENCV_FFMPEG_CAPTURE_OPTIONS"
_ENV_LOCK = threading.Lock()

Frame = npt.NDArray[np.uint8]


class _Rate:
    """Events per second over the last STATS_WINDOW_S."""

    def __init__(self) -> None:
        self._stamps: deque[float] = deque(maxlen=256)

    def tick(self, now: float) -> None:
        self._stamps.append(now)

    def per_second(self, now: float) -> float:
        recent = sum(1 for t in self._stamps if now - t <= STATS_WINDOW_S)
        return recent / STATS_WINDOW_S


@dataclass
class _Camera:
    device: Device
    url: str
    min_area_fraction: float
    lock: threading.Lock = field(default_factory=threading.Lock)
    frame: Frame | None = None
    frame_no: int = 0  # frames captured since start, across reconnects
    frame_at: float | None = None  # monotonic time of the latest frame
    analysed_no: int = 0
    connected: bool = False
    frames_dropped: int = 0
    reconnects: int = 0
    rate_in: _Rate = field(default_factory=_Rate)
    rate_analysed: _Rate = field(default_factory=_Rate)
    threads: list[threading.Thread] = field(default_factory=list)

    @property
    def is_file(self) -> bool:
        return "://" not in self.url


def _is_camera(device: Device) -> bool:
    return str(device.family) == "camera"


class CameraManager:
    """Capture and analyse every camera in `cameras`; observations go to `on_observation(camera_id, obs)`.

    `min_area_fraction` is the default share of a camera's mask that must move for `motion=True`;
    a zone's `thresholds["camera.motion"]["min_area_fraction"]` or the site's
    `rules["camera.motion"].params["min_area_fraction"]` override it.
    """

    def __init__(
        self,
        site: SiteConfig,
        edge_id: str,
        cameras: list[Device],
        on_observation: ObservationCallback,
        *,
        min_area_fraction: float = 0.005,
        clock: Clock | None = None,
    ) -> None:
        self.site, self.edge_id = site, edge_id
        self.on_observation = on_observation
        self.clock: Clock = clock or SystemClock()
        # a deployment may tune the options for its cameras (e.g. UDP) by setting the variable itself
        self._ffmpeg_options = os.environ.get(_ENV) or FFMPEG_OPTIONS
        self._stop = threading.Event()
        self._cameras: dict[str, _Camera] = {}
        rule = site.rules.get("camera.motion")
        site_fraction = float(rule.params.get("min_area_fraction", min_area_fraction)) if rule else min_area_fraction
        for device in cameras:
            if not _is_camera(device):
                raise ValueError(f"device {device.id!r} is a {device.family}, not a camera")
            if not device.url:
                raise ValueError(f"camera {device.id!r} has no url (rtsp://, http(s):// or a file path)")
            zone = site.zone(device.zone) if device.zone else None
            zone_params = zone.thresholds.get("camera.motion", {}) if zone else {}
            fraction = float(zone_params.get("min_area_fraction", site_fraction))
            self._cameras[device.id] = _Camera(device, device.url, fraction)

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        self._stop.clear()
        cv2.setNumThreads(OPENCV_THREADS)
        for cam in self._cameras.values():
            cam.threads = [
                threading.Thread(
                    target=self._capture_loop, args=(cam,), name=f"cam-capture-{cam.device.id}", daemon=True
                ),
                threading.Thread(
                    target=self._analyse_loop, args=(cam,), name=f"cam-analyse-{cam.device.id}", daemon=True
                ),
            ]
            for thread in cam.threads:
                thread.start()
        log.info("edge %s: watching %d camera(s): %s", self.edge_id, len(self._cameras), ", ".join(self._cameras))

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        deadline = time.monotonic() + timeout
        for cam in self._cameras.values():
            for thread in cam.threads:
                thread.join(max(0.0, deadline - time.monotonic()))
            cam.threads = []

    def __enter__(self) -> CameraManager:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- queries ------------------------------------------------------------------------------
    def snapshot(self, camera_id: str) -> bytes | None:
        """A JPEG of the camera's latest frame, or None if it never sent one (or is unknown)."""
        cam = self._cameras.get(camera_id)
        if cam is None:
            return None
        with cam.lock:
            frame = cam.frame
        if frame is None:
            return None
        ok, jpeg = cv2.imencode(".jpg", frame, [int(cv2.IMWRITE_JPEG_QUALITY), 85])
        return jpeg.tobytes() if ok else None

    def stats(self) -> dict[str, dict[str, Any]]:
        now = time.monotonic()
        out: dict[str, dict[str, Any]] = {}
        for camera_id, cam in self._cameras.items():
            with cam.lock:
                out[camera_id] = {
                    "connected": cam.connected,
                    "fps_in": round(cam.rate_in.per_second(now), 2),
                    "fps_analysed": round(cam.rate_analysed.per_second(now), 2),
                    "frames_dropped": cam.frames_dropped,
                    "reconnects": cam.reconnects,
                    "last_frame_age_s": None if cam.frame_at is None else round(now - cam.frame_at, 3),
                }
        return out

    # -- capture ------------------------------------------------------------------------------
    def _open(self, cam: _Camera) -> cv2.VideoCapture:
        with _ENV_LOCK:
            saved = os.environ.pop(_ENV, None)
            try:
                if cam.is_file:
                    return cv2.VideoCapture(str(Path(cam.url)))
                os.environ[_ENV] = self._ffmpeg_options
                params = [
                    cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
                    OPEN_TIMEOUT_MS,
                    cv2.CAP_PROP_READ_TIMEOUT_MSEC,
                    READ_TIMEOUT_MS,
                ]
                return cv2.VideoCapture(cam.url, cv2.CAP_FFMPEG, params)
            finally:
                os.environ.pop(_ENV, None)
                if saved is not None:
                    os.environ[_ENV] = saved

    def _capture_loop(self, cam: _Camera) -> None:
        attempt = 0
        while not self._stop.is_set():
            cap = self._open(cam)
            if not cap.isOpened():
                cap.release()
                delay = BACKOFF_S[min(attempt, len(BACKOFF_S) - 1)]
                log.warning("camera %s: cannot open %s; retrying in %.1f s", cam.device.id, cam.url, delay)
                attempt += 1
                with cam.lock:
                    cam.reconnects += 1
                self._stop.wait(delay)
                continue
            attempt = 0
            with cam.lock:
                cam.connected = True
            log.info("camera %s: connected to %s", cam.device.id, cam.url)
            try:
                self._read_frames(cam, cap)
            finally:
                cap.release()
                with cam.lock:
                    cam.connected = False
            if not self._stop.is_set():
                log.warning("camera %s: stream %s ended; reconnecting", cam.device.id, cam.url)
                with cam.lock:
                    cam.reconnects += 1
                self._stop.wait(BACKOFF_S[0])

    def _read_frames(self, cam: _Camera, cap: cv2.VideoCapture) -> None:
        # a file delivers frames as fast as it is read: pace it at its own frame rate, and loop it
        file_period = 0.0
        if cam.is_file:
            fps = cap.get(cv2.CAP_PROP_FPS)
            file_period = 1.0 / fps if fps and 0 < fps < 240 else 0.1
        next_at = time.monotonic()
        while not self._stop.is_set():
            ok, frame = cap.read()
            if not ok and cam.is_file:
                cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                ok, frame = cap.read()
            if not ok or frame is None:
                return
            now = time.monotonic()
            with cam.lock:
                if cam.frame is not None and cam.analysed_no != cam.frame_no:
                    cam.frames_dropped += 1  # replaced before the analyser saw it (expected above its fps)
                cam.frame = np.asarray(frame, np.uint8)
                cam.frame_no += 1
                cam.frame_at = now
                cam.rate_in.tick(now)
            if file_period:
                next_at += file_period
                delay = next_at - time.monotonic()
                if delay > 0:
                    self._stop.wait(delay)
                else:
                    next_at = time.monotonic()

    # -- analysis -----------------------------------------------------------------------------
    def _analyse_loop(self, cam: _Camera) -> None:
        device = cam.device
        motion = MotionDetector(device.motion_mask or None, cam.min_area_fraction)
        tamper = TamperDetector(check_every=SHIFT_CHECK_EVERY)
        period = 1.0 / device.fps
        loss_after = max(VIDEO_LOSS_AFTER_S, 3 * period)
        started = time.monotonic()
        last_loss_report = 0.0
        next_tick = started
        while not self._stop.is_set():
            now = time.monotonic()
            with cam.lock:
                fresh = cam.frame is not None and cam.frame_no != cam.analysed_no
                frame, frame_no, frame_at = cam.frame, cam.frame_no, cam.frame_at
                if fresh:
                    cam.analysed_no = frame_no
            obs: CameraObservation | None = None
            if fresh and frame is not None:
                obs = observe(frame, ts=self.clock.now(), frame_no=frame_no, motion=motion, tamper=tamper)
                with cam.lock:
                    cam.rate_analysed.tick(now)
            elif now - (frame_at if frame_at is not None else started) >= loss_after and now - last_loss_report >= 1.0:
                last_loss_report = now
                obs = video_lost(self.clock.now(), frame_no)
            if obs is not None:
                try:
                    self.on_observation(device.id, obs)
                except Exception:
                    log.exception("camera %s: the observation callback failed; analysis goes on", device.id)
            next_tick += period
            delay = next_tick - time.monotonic()
            if delay < -1.0:
                next_tick = time.monotonic()
            elif delay > 0:
                self._stop.wait(delay)
