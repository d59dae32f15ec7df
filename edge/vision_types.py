"""Types shared between the edge vision pipeline and the rule engine."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal


@dataclass(frozen=True, slots=True)
class CameraObservation:
    """One analysed camera frame, as produced by the vision pipeline."""

    ts: datetime
    frame_no: int
    video_ok: bool
    motion_fraction: float  # share of the mask area that moved in this analysed frame
    motion: bool  # motion_fraction >= the configured min_area_fraction
    tamper: Literal["covered", "blinded", "defocused", "moved"] | None
