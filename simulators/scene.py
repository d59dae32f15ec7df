"""Synthetic camera frames: a fence-line scene with mild sensor noise, and the events a test injects.

Everything is numpy/OpenCV and deterministic for a given seed, so a test sees the same pixels
on every run. Frames are BGR uint8, 640×360 by default.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np
import numpy.typing as npt

__all__ = [
    "EVENTS",
    "ActiveEvent",
    "EventKind",
    "Frame",
    "SensorNoise",
    "apply_events",
    "draw_person",
    "fence_background",
    "seed_for",
]

Frame = npt.NDArray[np.uint8]
EventKind = Literal["intruder", "cover", "blind", "defocus", "move", "stop"]
EVENTS: tuple[EventKind, ...] = ("intruder", "cover", "blind", "defocus", "move", "stop")

# How far a "move" event shifts the scene, as a fraction of the frame size: a camera knocked off its aim.
MOVE_SHIFT = (0.09, 0.07)


@dataclass(frozen=True, slots=True)
class ActiveEvent:
    kind: EventKind
    start: float  # monotonic seconds
    end: float

    def progress(self, now: float) -> float:
        """0 at the start, 1 at the end (an intruder's position along its walk)."""
        span = max(self.end - self.start, 1e-6)
        return min(max((now - self.start) / span, 0.0), 1.0)


def seed_for(name: str) -> int:
    """A stable seed per camera id (Python's hash() is salted per process)."""
    return zlib.crc32(name.encode())


def fence_background(width: int = 640, height: int = 360, seed: int = 0) -> Frame:
    """Sky, a tree line, a chain-link fence with posts and barbed wire, and a gravel patrol strip."""
    rng = np.random.default_rng(seed)
    img = np.zeros((height, width, 3), np.uint8)
    horizon = int(height * 0.30)
    # sky: a vertical gradient from pale blue to a hazy white near the horizon
    t = np.linspace(0.0, 1.0, horizon, dtype=np.float32)[:, None]
    sky = (1 - t) * np.array([200, 160, 120], np.float32) + t * np.array([225, 215, 205], np.float32)
    img[:horizon] = sky[:, None, :].astype(np.uint8)
    # tree line: a bumpy dark-green band on the horizon
    tops = horizon - 8 - (np.cumsum(rng.normal(0, 1.5, width)) % 14).astype(int)
    for x in range(width):
        img[tops[x] : horizon, x] = (40, 70, 45)
    # ground: grass with a fixed texture, then a gravel road nearer the camera
    ground = rng.normal(0, 12, (height - horizon, width)).astype(np.float32)
    ground = np.asarray(cv2.GaussianBlur(ground, (0, 0), 1.5), np.float32)
    base = np.empty((height - horizon, width, 3), np.float32)
    base[:] = (60, 120, 85)
    road_top = int(height * 0.68) - horizon
    base[road_top:] = (120, 135, 140)
    img[horizon:] = np.clip(base + ground[:, :, None], 0, 255).astype(np.uint8)
    # the fence: posts every 64 px, chain link between a top and a bottom rail
    fence_top, fence_bottom = int(height * 0.18), int(height * 0.62)
    mesh = np.zeros((height, width), np.uint8)
    step = 12
    for x0 in range(-height, width + height, step):
        cv2.line(mesh, (x0, fence_top), (x0 + (fence_bottom - fence_top), fence_bottom), 255, 1)
        cv2.line(mesh, (x0, fence_bottom), (x0 + (fence_bottom - fence_top), fence_top), 255, 1)
    mesh[:fence_top] = 0
    mesh[fence_bottom:] = 0
    img[mesh > 0] = (150, 150, 145)
    for x in range(16, width, 64):
        cv2.rectangle(img, (x - 3, fence_top - 14), (x + 3, fence_bottom + 4), (90, 95, 100), -1)
    cv2.line(img, (0, fence_top), (width, fence_top), (110, 110, 110), 2)
    cv2.line(img, (0, fence_bottom), (width, fence_bottom), (110, 110, 110), 2)
    for k in range(3):  # barbed wire above the fence
        y = fence_top - 5 - 4 * k
        cv2.line(img, (0, y), (width, y), (80, 80, 80), 1)
        for x in range(4 + 7 * k, width, 22):
            cv2.line(img, (x - 2, y - 2), (x + 2, y + 2), (80, 80, 80), 1)
    return img


def draw_person(img: Frame, progress: float) -> None:
    """A person-shaped blob walking left to right along the patrol strip; `progress` in 0..1."""
    h, w = img.shape[:2]
    height = int(h * 0.32)
    width = max(int(height * 0.32), 4)
    x = int(-width + progress * (w + 2 * width))
    feet = int(h * 0.82)
    top = feet - height
    head_r = max(height // 9, 2)
    dark = (45, 40, 50)
    cv2.circle(img, (x, top + head_r), head_r, (70, 90, 130), -1)  # head
    cv2.rectangle(
        img, (x - width // 2, top + 2 * head_r), (x + width // 2, top + int(height * 0.58)), (40, 60, 150), -1
    )
    swing = int(width * 0.35 * np.sin(progress * 40.0))  # legs scissor as it walks
    leg_top = top + int(height * 0.58)
    cv2.line(img, (x - width // 5, leg_top), (x - width // 5 + swing, feet), dark, max(width // 4, 2))
    cv2.line(img, (x + width // 5, leg_top), (x + width // 5 - swing, feet), dark, max(width // 4, 2))


def apply_events(frame: Frame, events: list[ActiveEvent], now: float) -> Frame | None:
    """The frame as the camera would see it with these events running; None while the stream is stopped."""
    kinds = {e.kind for e in events}
    if "stop" in kinds:
        return None
    out = frame
    for event in events:
        if event.kind == "intruder":
            out = out.copy() if out is frame else out
            draw_person(out, event.progress(now))
    if "move" in kinds:
        h, w = out.shape[:2]
        shift = np.array([[1, 0, MOVE_SHIFT[0] * w], [0, 1, MOVE_SHIFT[1] * h]], np.float32)
        out = np.asarray(cv2.warpAffine(out, shift, (w, h), borderMode=cv2.BORDER_REFLECT), np.uint8)
    if "defocus" in kinds:
        out = np.asarray(cv2.GaussianBlur(out, (0, 0), 7), np.uint8)
    if "cover" in kinds:
        out = np.full_like(out, 8)
    elif "blind" in kinds:
        out = np.full_like(out, 250)
    return out


class SensorNoise:
    """Mild per-frame noise (σ ≈ 2 grey levels) from a few pre-drawn planes, cheap enough for 15 fps."""

    def __init__(self, width: int, height: int, seed: int, sigma: float = 2.0, planes: int = 8) -> None:
        rng = np.random.default_rng(seed)
        noise = rng.normal(0.0, sigma, (planes, height, width, 3))
        self._pos = np.clip(noise, 0, 255).astype(np.uint8)
        self._neg = np.clip(-noise, 0, 255).astype(np.uint8)
        self._rng = rng

    def add(self, frame: Frame) -> Frame:
        i = int(self._rng.integers(len(self._pos)))
        out = cv2.add(frame, self._pos[i])
        return np.asarray(cv2.subtract(out, self._neg[i]), np.uint8)
