"""The catalogue of alert rules (contract §5): names, default levels and default thresholds.

Edge rules read their thresholds as `defaults | site override | zone override`; config
validation uses the names to catch typos in `rules:` and `zones[].thresholds`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gridwatch.contract.enums import Level


@dataclass(frozen=True, slots=True)
class RuleSpec:
    name: str
    level: Level
    summary: str
    params: dict[str, Any] = field(default_factory=dict)
    central: bool = False  # computed by central rather than the edge


_SPECS = (
    RuleSpec("perimeter.intrusion", Level.MEDIUM, "a beam breaks in an armed perimeter zone",
             {"correlation_s": 5.0, "beams_for_high": 2, "camera_window_s": 5.0}),
    RuleSpec("perimeter.tamper", Level.HIGH, "detector tamper"),
    RuleSpec("perimeter.fault", Level.MEDIUM, "detector trouble or low battery"),
    RuleSpec("access.door_forced", Level.HIGH, "door opened without a grant", {"grant_window_s": 10.0}),
    RuleSpec("access.door_held", Level.MEDIUM, "door open longer than allowed", {"held_after_s": 30.0}),
    RuleSpec("access.denied_burst", Level.MEDIUM, "repeated denials at one door", {"count": 3, "window_s": 60.0}),
    RuleSpec("access.after_hours", Level.LOW, "a grant outside the door's schedule"),
    RuleSpec("access.anti_passback", Level.MEDIUM, "same card in twice without out"),
    RuleSpec("location.restricted_zone", Level.HIGH, "inmate or supervisee inside a restricted zone"),
    RuleSpec("location.out_of_grid", Level.MEDIUM, "inmate outside their grid during lock-in"),
    RuleSpec("location.gathering", Level.MEDIUM, "inmates gathered close together",
             {"count": 6, "radius_m": 2.0, "duration_s": 30.0}),
    RuleSpec("location.stationary", Level.MEDIUM, "a person has not moved outside a cell",
             {"distance_m": 0.5, "duration_s": 1200.0}),
    RuleSpec("location.tag_lost", Level.MEDIUM, "no position from a tag",
             {"after_s": 30.0, "perimeter_distance_m": 10.0}),
    RuleSpec("location.headcount_mismatch", Level.HIGH, "roll call found present ≠ expected"),
    RuleSpec("wristband.strap_open", Level.HIGH, "wristband strap opened"),
    RuleSpec("wristband.sos", Level.HIGH, "SOS button pressed"),
    RuleSpec("wristband.fall", Level.HIGH, "fall detected"),
    RuleSpec("wristband.heart_rate", Level.MEDIUM, "heart rate out of range",
             {"low": 40.0, "high": 150.0, "critical_low": 30.0, "critical_high": 180.0, "duration_s": 30.0}),
    RuleSpec("wristband.temperature", Level.LOW, "body temperature high", {"threshold": 38.5, "duration_s": 60.0}),
    RuleSpec("wristband.geofence", Level.HIGH, "GPS outside inclusion or inside exclusion zone"),
    RuleSpec("wristband.curfew", Level.MEDIUM, "outside the home zone during curfew"),
    RuleSpec("camera.motion", Level.MEDIUM, "motion in a masked region of an armed zone",
             {"min_area_fraction": 0.005, "min_frames": 3}),
    RuleSpec("camera.tamper", Level.HIGH, "image covered, blinded, defocused or moved"),
    RuleSpec("camera.video_loss", Level.MEDIUM, "no frame from a camera", {"after_s": 10.0}),
    RuleSpec("device.offline", Level.MEDIUM, "device silent or offline", {"interval_factor": 3.0}),
    RuleSpec("device.low_battery", Level.LOW, "device battery low", {"threshold": 15.0}),
    RuleSpec("system.flood", Level.MEDIUM, "too many transitions of one rule in one zone",
             {"max_per_minute": 10}),
    RuleSpec("edge.offline", Level.HIGH, "no heartbeat from an edge", central=True),
)

RULES: dict[str, RuleSpec] = {spec.name: spec for spec in _SPECS}

QUIET_PERIOD_S = 10.0
"""Default time a condition must stay false before its alert clears (contract §5)."""
