"""Camera rules from analysed frames (and the camera's own events): motion, tamper, video loss."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from gridwatch.contract.enums import CameraEvent, SubjectKind
from gridwatch.contract.readings import CameraEventReading

from ..vision_types import CameraObservation
from .alerts import AlertBook
from .context import Controls, SiteView
from .perimeter import PerimeterRules


@dataclass(slots=True)
class CameraState:
    motion_frames: int = 0  # consecutive analysed frames with motion
    video_bad_since: datetime | None = None


class CameraRules:
    def __init__(self, view: SiteView, controls: Controls, book: AlertBook, perimeter: PerimeterRules) -> None:
        self.view, self.controls, self.book, self.perimeter = view, controls, book, perimeter
        self.cams: dict[str, CameraState] = {}

    def serves(self, camera: str) -> bool:
        return camera in self.view.device_ids

    def on_observation(self, camera: str, obs: CameraObservation, now: datetime) -> None:
        if not self.serves(camera):
            return
        state = self.cams.setdefault(camera, CameraState())
        zone = self.view.device_zone(camera)
        if not obs.video_ok:
            state.motion_frames = 0
            state.video_bad_since = state.video_bad_since or obs.ts
            self._video(camera, zone, state, now)
            return
        state.video_bad_since = None
        self.book.release("camera.video_loss", SubjectKind.DEVICE, camera, now)
        if obs.tamper is not None:
            self._tamper(camera, zone, obs.tamper, now)
        p = self.view.params("camera.motion", zone)
        if obs.motion_fraction >= float(p["min_area_fraction"]):
            state.motion_frames += 1
        else:
            state.motion_frames = 0
            self.book.release("camera.motion", SubjectKind.DEVICE, camera, now)
            return
        if state.motion_frames >= int(p["min_frames"]):
            self._motion(
                camera,
                zone,
                obs.ts,
                now,
                {"frames": state.motion_frames, "motion_fraction": round(obs.motion_fraction, 4)},
            )

    def on_event(self, r: CameraEventReading, now: datetime) -> None:
        """Events the camera reports itself (contract §2.6)."""
        if not self.serves(r.camera):
            return
        zone = self.view.device_zone(r.camera)
        state = self.cams.setdefault(r.camera, CameraState())
        if r.event == CameraEvent.MOTION:
            if r.active:
                self._motion(r.camera, zone, r.ts, now, {"source": "camera"})
            else:
                self.book.release("camera.motion", SubjectKind.DEVICE, r.camera, now)
        elif r.event == CameraEvent.TAMPER and r.active:
            self._tamper(r.camera, zone, "reported", now)
        elif r.event == CameraEvent.VIDEO_LOSS:
            if r.active:
                # the camera itself says the video is gone: no need to wait for after_s
                self._raise_video_loss(r.camera, zone, r.ts, now)
            else:
                state.video_bad_since = None
                self.book.release("camera.video_loss", SubjectKind.DEVICE, r.camera, now)

    def on_tick(self, now: datetime) -> None:
        for camera, state in self.cams.items():
            if state.video_bad_since is not None:
                self._video(camera, self.view.device_zone(camera), state, now)

    def _motion(self, camera: str, zone: str | None, ts: datetime, now: datetime, detail: dict[str, object]) -> None:
        if zone is None:
            return
        walk_test = self.controls.in_walk_test(zone, now)
        if not (self.controls.armed(self.view, zone, now) or walk_test):
            return
        self.book.activate(
            "camera.motion",
            SubjectKind.DEVICE,
            camera,
            now,
            zone=zone,
            devices=(camera,),
            camera=camera,
            title=f"Camera motion, {self.view.device_name(camera)} ({self.view.zone_name(zone)})",
            detail={**detail, "walk_test": walk_test} if walk_test else dict(detail),
        )
        self.perimeter.on_camera_motion(zone, camera, ts, now)

    def _tamper(self, camera: str, zone: str | None, how: str, now: datetime) -> None:
        self.book.event(
            "camera.tamper",
            SubjectKind.DEVICE,
            camera,
            now,
            zone=zone,
            devices=(camera,),
            camera=camera,
            title=f"Camera tamper ({how}), {self.view.device_name(camera)}",
            detail={"tamper": how},
        )

    def _video(self, camera: str, zone: str | None, state: CameraState, now: datetime) -> None:
        since = state.video_bad_since
        if since is not None and (now - since).total_seconds() >= self.view.param("camera.video_loss", "after_s", zone):
            self._raise_video_loss(camera, zone, since, now)

    def _raise_video_loss(self, camera: str, zone: str | None, since: datetime, now: datetime) -> None:
        self.book.activate(
            "camera.video_loss",
            SubjectKind.DEVICE,
            camera,
            now,
            zone=zone,
            devices=(camera,),
            camera=camera,
            title=f"Video lost, {self.view.device_name(camera)}",
            detail={"since": since.isoformat()},
        )
