"""Camera simulator: one real RTSP mount per camera on loopback, with events injected on demand.

This process renders the frames (a synthetic fence scene, or a video file looped) with OpenCV,
JPEG-encodes them and writes them to `simulators/_rtsp_server.py`, a GStreamer RTSP server run
under Debian's /usr/bin/python3, which serves `rtsp://HOST:PORT/<camera-id>` as MJPEG over RTP.

Events (`intruder`, `cover`, `blind`, `defocus`, `move`, `stop`, and `clear` to end them all) are
injected in-process with `CameraSimulator.inject`, or from another process through a JSON-lines
control socket (`control(host, control_port, camera_id, event, seconds)`); the control port
defaults to the RTSP port + 1.

    python -m simulators.camera serve --config configs/demo-site.yaml --port 8554 [--host 127.0.0.1]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import socket
import socketserver
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import cv2
import numpy as np

from simulators.scene import (
    EVENTS,
    ActiveEvent,
    EventKind,
    Frame,
    SensorNoise,
    apply_events,
    fence_background,
    seed_for,
)

__all__ = ["CONTROL_EVENTS", "CameraSimulator", "ControlError", "control", "main"]

log = logging.getLogger("gridwatch.sim.camera")

SYSTEM_PYTHON = os.environ.get("GRIDWATCH_GST_PYTHON", "/usr/bin/python3")
SERVER_SCRIPT = Path(__file__).with_name("_rtsp_server.py")
HEADER = struct.Struct("!HI")
CONTROL_EVENTS: tuple[str, ...] = (*EVENTS, "clear")
JPEG_QUALITY = 85


class ControlError(RuntimeError):
    """The simulator refused a control request (unknown camera or event, bad seconds)."""


class _Feed:
    """One camera: where its frames come from and which events are running on it."""

    def __init__(self, camera_id: str, width: int, height: int, source: Path | None) -> None:
        self.camera_id = camera_id
        self.width, self.height = width, height
        self.source = source
        seed = seed_for(camera_id)
        self.background = fence_background(width, height, seed)
        self.noise = SensorNoise(width, height, seed)
        self.events: list[ActiveEvent] = []
        self.lock = threading.Lock()
        self.frames_sent = 0
        self._cap: cv2.VideoCapture | None = None
        if source is not None:
            if not source.is_file():
                raise FileNotFoundError(f"camera {camera_id!r}: no video file at {source}")
            # FFmpeg's low-delay capture options (OPENCV_FFMPEG_CAPTURE_OPTIONS, set for RTSP clients)
            # garble H.264 files with B-frames: open the file with the variable unset
            saved = os.environ.pop("OPENCV_FFMPEG_CAPTURE_OPTIONS", None)
            try:
                self._cap = cv2.VideoCapture(str(source))
            finally:
                if saved is not None:
                    os.environ["OPENCV_FFMPEG_CAPTURE_OPTIONS"] = saved
            if not self._cap.isOpened():
                raise ValueError(f"camera {camera_id!r}: OpenCV cannot open {source}")

    def _base(self) -> Frame:
        if self._cap is None:
            return self.noise.add(self.background)
        ok, frame = self._cap.read()
        if not ok:  # end of file: loop
            self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, frame = self._cap.read()
            if not ok:
                raise RuntimeError(f"camera {self.camera_id!r}: cannot read {self.source}")
        if frame.shape[1] != self.width or frame.shape[0] != self.height:
            frame = cv2.resize(frame, (self.width, self.height), interpolation=cv2.INTER_AREA)
        return np.ascontiguousarray(frame, dtype=np.uint8)

    def render(self, now: float) -> Frame | None:
        with self.lock:
            self.events = [e for e in self.events if e.end > now]
            events = list(self.events)
        base = self._base()
        frame = apply_events(base, events, now)
        if frame is None:
            return None
        if self._cap is None and frame is not base and any(e.kind in ("cover", "blind") for e in events):
            frame = self.noise.add(frame)  # a covered sensor still shows its noise
        return frame

    def inject(self, kind: EventKind | str, seconds: float, now: float) -> None:
        with self.lock:
            if kind == "clear":
                self.events = []
            else:
                self.events.append(ActiveEvent(kind, now, now + seconds))  # type: ignore[arg-type]

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()


class CameraSimulator:
    """Serve synthetic (or file) video for `camera_ids` at `rtsp://host:port/<id>`; a context manager.

    `source` maps a camera id to a video file to loop instead of the synthetic scene.
    `control_port` is where the JSON-lines control socket listens: None = port + 1, 0 = any free port
    (read it back from `.control_port`), or a number.
    """

    def __init__(
        self,
        camera_ids: list[str],
        port: int,
        *,
        source: dict[str, Path] | None = None,
        host: str = "127.0.0.1",
        fps: int = 12,
        width: int = 640,
        height: int = 360,
        control_port: int | None = None,
    ) -> None:
        if not camera_ids:
            raise ValueError("the camera simulator needs at least one camera id")
        unknown = set(source or {}) - set(camera_ids)
        if unknown:
            raise ValueError(f"source given for unknown cameras: {', '.join(sorted(unknown))}")
        self.camera_ids = list(camera_ids)
        self.host, self.port, self.fps = host, port, fps
        self.width, self.height = width, height
        self._control_port_arg = port + 1 if control_port is None else control_port
        self._feeds = {cid: _Feed(cid, width, height, (source or {}).get(cid)) for cid in camera_ids}
        self._proc: subprocess.Popen[bytes] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._control: socketserver.ThreadingTCPServer | None = None

    # -- public API ---------------------------------------------------------------------------
    def url(self, camera_id: str) -> str:
        if camera_id not in self._feeds:
            raise KeyError(f"no camera {camera_id!r} in this simulator (known: {', '.join(self.camera_ids)})")
        return f"rtsp://{self.host}:{self.port}/{camera_id}"

    @property
    def control_port(self) -> int:
        if self._control is None:
            raise RuntimeError("the camera simulator is not running")
        return int(self._control.server_address[1])

    def inject(self, camera_id: str, event: str, seconds: float) -> None:
        """Start `event` on `camera_id` now, for `seconds` (an intruder takes that long to walk across)."""
        if camera_id not in self._feeds:
            raise ControlError(f"unknown camera {camera_id!r} (known: {', '.join(self.camera_ids)})")
        if event not in CONTROL_EVENTS:
            raise ControlError(f"unknown event {event!r} (one of: {', '.join(CONTROL_EVENTS)})")
        if not (0 < seconds <= 86_400) and event != "clear":
            raise ControlError(f"seconds must be in (0, 86400], got {seconds!r}")
        self._feeds[camera_id].inject(event, seconds, time.monotonic())
        log.info("camera %s: %s for %.1f s", camera_id, event, seconds)

    def frames_sent(self, camera_id: str) -> int:
        return self._feeds[camera_id].frames_sent

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None and not self._stop.is_set()

    def start(self) -> None:
        self._control = _ControlServer((self.host, self._control_port_arg), self)
        threading.Thread(target=self._control.serve_forever, name="camera-control", daemon=True).start()
        argv = [
            SYSTEM_PYTHON, str(SERVER_SCRIPT), "--host", self.host, "--port", str(self.port),
            "--mounts", ",".join(self.camera_ids), "--fps", str(self.fps),
            "--width", str(self.width), "--height", str(self.height),
        ]  # fmt: skip
        try:
            self._proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        except OSError as exc:
            self.stop()
            raise RuntimeError(f"cannot run {SYSTEM_PYTHON} for the RTSP server: {exc}; install python3-gi "
                               "and gir1.2-gst-rtsp-server-1.0 (see MEASURED.md)") from exc  # fmt: skip
        self._wait_ready(timeout=15.0)
        self._thread = threading.Thread(target=self._render_loop, name="camera-render", daemon=True)
        self._thread.start()
        log.info("camera simulator serving %s on rtsp://%s:%s/ (control port %s)",
                 ", ".join(self.camera_ids), self.host, self.port, self.control_port)  # fmt: skip

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)
        if self._proc is not None:
            with contextlib.suppress(OSError):
                if self._proc.stdin is not None:
                    self._proc.stdin.close()
            try:
                self._proc.wait(5.0)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            if self._proc.stdout is not None:
                self._proc.stdout.close()
            self._proc = None
        if self._control is not None:
            self._control.shutdown()
            self._control.server_close()
            self._control = None
        for feed in self._feeds.values():
            feed.close()

    def __enter__(self) -> CameraSimulator:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- internals ----------------------------------------------------------------------------
    def _wait_ready(self, timeout: float) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        result: list[bytes] = []
        reader = threading.Thread(target=lambda: result.append(self._proc.stdout.readline()), daemon=True)  # type: ignore[union-attr]
        reader.start()
        reader.join(timeout)
        line = result[0].decode(errors="replace").strip() if result else ""
        if not line.startswith("READY"):
            code = self._proc.poll()
            self.stop()
            raise RuntimeError(f"the RTSP server on {self.host}:{self.port} did not start "
                               f"(exit code {code}, said {line!r}); is the port free?")  # fmt: skip

    def _render_loop(self) -> None:
        assert self._proc is not None and self._proc.stdin is not None
        stdin = self._proc.stdin
        period = 1.0 / self.fps
        next_tick = time.monotonic()
        params = [int(cv2.IMWRITE_JPEG_QUALITY), JPEG_QUALITY]
        while not self._stop.is_set():
            now = time.monotonic()
            for index, camera_id in enumerate(self.camera_ids):
                feed = self._feeds[camera_id]
                try:
                    frame = feed.render(now)
                except (RuntimeError, cv2.error) as exc:
                    log.error("camera %s: cannot render a frame: %s", camera_id, exc)
                    frame = None
                if frame is None:
                    continue
                ok, jpeg = cv2.imencode(".jpg", frame, params)
                if not ok:
                    continue
                data = jpeg.tobytes()
                try:
                    stdin.write(HEADER.pack(index, len(data)))
                    stdin.write(data)
                    stdin.flush()
                except (BrokenPipeError, ValueError, OSError):
                    log.error("the RTSP server process exited (code %s); no more frames", self._proc.poll())
                    self._stop.set()
                    return
                feed.frames_sent += 1
            next_tick += period
            delay = next_tick - time.monotonic()
            if delay < -1.0:  # fell far behind (a stalled client or a slow box): do not burst to catch up
                next_tick = time.monotonic()
            elif delay > 0:
                self._stop.wait(delay)


class _ControlHandler(socketserver.StreamRequestHandler):
    """JSON lines: {"camera": id, "event": name, "seconds": n} -> {"ok": true} or {"ok": false, "error": why}."""

    server: _ControlServer

    def handle(self) -> None:
        for raw in self.rfile:
            reply: dict[str, Any]
            try:
                req = json.loads(raw)
                if not isinstance(req, dict):
                    raise ControlError("a request is a JSON object")
                seconds = req.get("seconds", 0.0)
                if isinstance(seconds, bool) or not isinstance(seconds, int | float):
                    raise ControlError("seconds must be a number")
                self.server.sim.inject(str(req.get("camera")), str(req.get("event")), float(seconds))
                reply = {"ok": True}
            except (ValueError, ControlError) as exc:
                reply = {"ok": False, "error": str(exc)}
            self.wfile.write(json.dumps(reply).encode() + b"\n")
            self.wfile.flush()


class _ControlServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], sim: CameraSimulator) -> None:
        self.sim = sim
        super().__init__(address, _ControlHandler)


def control(host: str, port: int, camera_id: str, event: str, seconds: float, *, timeout: float = 5.0) -> None:
    """Inject `event` into a running simulator through its control port (the RTSP port + 1 by default)."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(json.dumps({"camera": camera_id, "event": event, "seconds": seconds}).encode() + b"\n")
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = sock.recv(4096)
            if not chunk:
                raise ControlError(f"the camera simulator at {host}:{port} closed the connection")
            buf += chunk
    reply = json.loads(buf)
    if not reply.get("ok"):
        raise ControlError(str(reply.get("error")))


def _parse_sources(items: list[str]) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for item in items:
        camera_id, sep, path = item.partition("=")
        if not sep:
            raise SystemExit(f"--source takes CAMERA=FILE, got {item!r}")
        out[camera_id] = Path(path)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m simulators.camera", description="RTSP camera simulator")
    sub = parser.add_subparsers(dest="cmd", required=True)
    serve = sub.add_parser("serve", help="serve every camera device of a site config over RTSP")
    serve.add_argument("--config", required=True, type=Path)
    serve.add_argument("--port", type=int, default=8554)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--control-port", type=int, default=None, help="JSON-lines control socket (default PORT+1)")
    serve.add_argument("--fps", type=int, default=12)
    serve.add_argument("--source", action="append", default=[], metavar="CAMERA=FILE", help="loop a video file")
    send = sub.add_parser("inject", help="inject an event into a running simulator")
    send.add_argument("camera")
    send.add_argument("event", choices=CONTROL_EVENTS)
    send.add_argument("seconds", type=float)
    send.add_argument("--host", default="127.0.0.1")
    send.add_argument("--control-port", type=int, default=8555)
    args = parser.parse_args(argv)
    logging.basicConfig(level=os.environ.get("GRIDWATCH_LOG_LEVEL", "INFO"), format="%(asctime)s %(name)s %(message)s")
    if args.cmd == "inject":
        control(args.host, args.control_port, args.camera, args.event, args.seconds)
        return 0
    from gridwatch.config.loader import load_site

    site = load_site(args.config)
    cameras = [d.id for d in site.devices if d.family == "camera"]
    if not cameras:
        print(f"{args.config}: no camera devices to serve", file=sys.stderr)
        return 1
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    sim = CameraSimulator(cameras, args.port, source=_parse_sources(args.source), host=args.host, fps=args.fps,
                          control_port=args.control_port)  # fmt: skip
    with sim:
        print(f"serving {', '.join(sim.url(c) for c in cameras)}; control port {sim.control_port}", flush=True)
        while not done.wait(1.0):
            if not sim.alive:
                log.error("the RTSP server stopped; exiting")
                return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
