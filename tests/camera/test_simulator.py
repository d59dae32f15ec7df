"""The camera simulator serves real RTSP on loopback, and OpenCV reads it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator

import cv2
import numpy as np
import pytest

from edge.camera import FFMPEG_OPTIONS
from simulators.camera import CameraSimulator, ControlError, control
from simulators.scene import fence_background, seed_for

from . import FOOTAGE, REPO, free_port_pair


def _open(url: str) -> cv2.VideoCapture:
    """Open like the edge does: low-delay FFmpeg options, only for this open (they garble H.264 files)."""
    saved = os.environ.get("OPENCV_FFMPEG_CAPTURE_OPTIONS")
    os.environ["OPENCV_FFMPEG_CAPTURE_OPTIONS"] = FFMPEG_OPTIONS
    try:
        cap = cv2.VideoCapture(
            url, cv2.CAP_FFMPEG, [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, 5000, cv2.CAP_PROP_READ_TIMEOUT_MSEC, 5000]
        )
    finally:
        if saved is None:
            del os.environ["OPENCV_FFMPEG_CAPTURE_OPTIONS"]
        else:
            os.environ["OPENCV_FFMPEG_CAPTURE_OPTIONS"] = saved
    assert cap.isOpened(), f"OpenCV cannot open {url}"
    return cap


def _read(cap: cv2.VideoCapture, n: int) -> list[np.ndarray]:
    frames = []
    for _ in range(n):
        ok, frame = cap.read()
        assert ok, "the stream stopped"
        frames.append(frame)
    return frames


@pytest.fixture(scope="module")
def sim() -> Iterator[CameraSimulator]:
    with CameraSimulator(["cam-a", "cam-b", "cam-file"], free_port_pair(), source={"cam-file": FOOTAGE}, fps=10) as s:
        yield s


def test_opencv_reads_640x360_frames_from_each_mount(sim: CameraSimulator) -> None:
    for camera_id in ("cam-a", "cam-b"):
        cap = _open(sim.url(camera_id))
        frames = _read(cap, 15)
        cap.release()
        assert frames[-1].shape == (360, 640, 3)
        assert 60 < float(frames[-1].mean()) < 200  # the fence scene, not a black or white screen


def test_two_cameras_show_different_scenes(sim: CameraSimulator) -> None:
    caps = [_open(sim.url(c)) for c in ("cam-a", "cam-b")]
    a, b = (_read(cap, 3)[-1] for cap in caps)
    for cap in caps:
        cap.release()
    assert float(cv2.absdiff(a, b).mean()) > 3.0  # seeded per camera id


def test_file_source_is_served_resized(sim: CameraSimulator) -> None:
    cap = _open(sim.url("cam-file"))
    frame = _read(cap, 5)[-1]
    cap.release()
    assert frame.shape == (360, 640, 3)
    # it is one of the footage's frames (resized), not the synthetic fence scene
    src = cv2.VideoCapture(str(FOOTAGE))
    best = 255.0
    while True:
        ok, original = src.read()
        if not ok:
            break
        best = min(
            best, float(cv2.absdiff(cv2.resize(original, (640, 360), interpolation=cv2.INTER_AREA), frame).mean())
        )
    src.release()
    assert best < 4.0
    assert float(cv2.absdiff(frame, fence_background(640, 360, seed_for("cam-file"))).mean()) > 20


def test_control_socket_injects_cover_into_the_running_stream(sim: CameraSimulator) -> None:
    cap = _open(sim.url("cam-b"))
    before = _read(cap, 3)[-1]
    control("127.0.0.1", sim.control_port, "cam-b", "cover", 3.0)
    deadline = time.monotonic() + 5
    dark = False
    while time.monotonic() < deadline and not dark:
        ok, frame = cap.read()
        assert ok
        dark = float(frame.mean()) < 20
    control("127.0.0.1", sim.control_port, "cam-b", "clear", 0)
    cap.release()
    assert float(before.mean()) > 60
    assert dark


def test_control_refuses_unknown_camera_and_event(sim: CameraSimulator) -> None:
    with pytest.raises(ControlError, match="unknown camera"):
        control("127.0.0.1", sim.control_port, "cam-zz", "cover", 1.0)
    with pytest.raises(ControlError, match="unknown event"):
        control("127.0.0.1", sim.control_port, "cam-a", "explode", 1.0)
    with pytest.raises(ControlError, match="seconds"):
        control("127.0.0.1", sim.control_port, "cam-a", "cover", -1)


def test_stop_event_pauses_frames_then_they_resume(sim: CameraSimulator) -> None:
    sent = sim.frames_sent("cam-a")
    sim.inject("cam-a", "stop", 1.5)
    time.sleep(0.5)
    paused = sim.frames_sent("cam-a")
    time.sleep(0.5)
    assert sim.frames_sent("cam-a") == paused
    time.sleep(1.5)
    assert sim.frames_sent("cam-a") > paused > sent - 1


def test_busy_port_fails_loudly() -> None:
    port = free_port_pair()
    with CameraSimulator(["cam-a"], port), pytest.raises(RuntimeError, match="did not start"):
        CameraSimulator(["cam-a"], port, control_port=0).start()


def test_cli_serves_both_demo_cameras_and_stops_on_sigterm() -> None:
    port = free_port_pair()
    env = {**os.environ, "GRIDWATCH_CAMERA_BASE": f"rtsp://127.0.0.1:{port}"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "simulators.camera", "serve", "--config", str(REPO / "configs" / "demo-site.yaml"),
         "--port", str(port)],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode()  # "serving …" once both mounts are up
        assert "cam-n-1" in line and "cam-w1-yard" in line, line
        for camera_id in ("cam-n-1", "cam-w1-yard"):
            cap = _open(f"rtsp://127.0.0.1:{port}/{camera_id}")
            assert _read(cap, 3)[-1].shape == (360, 640, 3)
            cap.release()
        control("127.0.0.1", port + 1, "cam-n-1", "intruder", 2.0)
    finally:
        proc.terminate()
        code = proc.wait(10)
    assert code == 0
