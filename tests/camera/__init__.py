"""Camera tests: the RTSP simulator, OpenCV capture and the edge's frame analysis, over real loopback RTSP."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

from edge.vision_types import CameraObservation
from tests.conftest import SHARED_DATA

REPO = Path(__file__).resolve().parents[2]
FOOTAGE = SHARED_DATA / "video" / "car-detection.mp4"


def free_port_pair() -> int:
    """A TCP port P on 127.0.0.1 with P+1 also free (the simulator's RTSP and control ports)."""
    for _ in range(50):
        with socket.socket() as a:
            a.bind(("127.0.0.1", 0))
            port = int(a.getsockname()[1])
            if port >= 65535:
                continue
            with socket.socket() as b:
                try:
                    b.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
        return port
    raise RuntimeError("no pair of free ports on 127.0.0.1")


class Observations:
    """Collects CameraManager callbacks per camera (called from the analysis threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_camera: dict[str, list[CameraObservation]] = {}

    def __call__(self, camera_id: str, obs: CameraObservation) -> None:
        with self._lock:
            self._by_camera.setdefault(camera_id, []).append(obs)

    def of(self, camera_id: str) -> list[CameraObservation]:
        with self._lock:
            return list(self._by_camera.get(camera_id, []))

    def wait_for(
        self, camera_id: str, pred: Callable[[list[CameraObservation]], bool], timeout: float
    ) -> list[CameraObservation]:
        """Wait until pred(observations of camera_id) holds; return them either way."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.of(camera_id)
            if pred(got):
                return got
            time.sleep(0.1)
        return self.of(camera_id)
