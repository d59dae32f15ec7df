"""The GStreamer half of the camera simulator: an RTSP server fed JPEG frames on stdin.

Runs under Debian's /usr/bin/python3 (python3-gi, gir1.2-gst-rtsp-server-1.0), not the venv, so
it imports nothing from gridwatch. The parent (simulators/camera.py) writes frames as
`!HI` (mount index, JPEG length) + JPEG bytes; each mount `/<name>` serves them as MJPEG over RTP
(`appsrc ! jpegparse ! rtpjpegpay`), shared by every client. Prints `READY <port>` once the
server listens. Exits on stdin EOF, on SIGTERM, and when the parent process goes away.

    /usr/bin/python3 simulators/_rtsp_server.py --port 8554 --mounts cam-a,cam-b --fps 12 --width 640 --height 360
"""

from __future__ import annotations

import argparse
import os
import signal
import struct
import sys
import threading
from typing import Any

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

HEADER = struct.Struct("!HI")
MAX_FRAME = 16 * 1024 * 1024
_PARENT = os.getppid()


def _parent_gone() -> bool:
    # Not PR_SET_PDEATHSIG: it fires when the parent *thread* that spawned us exits, and the simulator
    # may be started from a short-lived thread. stdin EOF covers a dead parent; this covers a leaked pipe.
    return os.getppid() != _PARENT


class Mounts:
    """The appsrc of every mount whose shared media is currently prepared (a client is watching)."""

    def __init__(self, names: list[str]) -> None:
        self.names = names
        self._lock = threading.Lock()
        self._src: dict[int, Any] = {}

    def attach(self, index: int, media: Any) -> None:
        src = media.get_element().get_by_name("src")
        with self._lock:
            self._src[index] = src
        media.connect("unprepared", lambda _m: self.detach(index, src))

    def detach(self, index: int, src: Any) -> None:
        with self._lock:
            if self._src.get(index) is src:
                del self._src[index]

    def push(self, index: int, data: bytes) -> None:
        with self._lock:
            src = self._src.get(index)
        if src is not None:
            src.emit("push-buffer", Gst.Buffer.new_wrapped(data))


def _read_exact(stream: Any, n: int) -> bytes | None:
    chunks = []
    while n > 0:
        chunk = stream.read(n)
        if not chunk:
            return None
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def _feed(mounts: Mounts, loop: Any) -> None:
    stdin = sys.stdin.buffer
    while True:
        header = _read_exact(stdin, HEADER.size)
        if header is None:
            break
        index, length = HEADER.unpack(header)
        if length > MAX_FRAME or index >= len(mounts.names):
            sys.stderr.write(f"rtsp server: bad frame header (mount {index}, {length} bytes); stopping\n")
            break
        data = _read_exact(stdin, length)
        if data is None:
            break
        mounts.push(index, data)
    GLib.idle_add(loop.quit)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--mounts", required=True, help="comma-separated mount names")
    parser.add_argument("--fps", type=int, default=12)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=360)
    args = parser.parse_args(argv)
    Gst.init(None)
    mounts = Mounts([m for m in args.mounts.split(",") if m])
    server = GstRtspServer.RTSPServer()
    server.set_address(args.host)
    server.set_service(str(args.port))
    caps = f"image/jpeg,width={args.width},height={args.height},framerate={args.fps}/1"
    launch = (
        f"( appsrc name=src is-live=true do-timestamp=true format=time block=false max-bytes=4000000 "
        f'caps="{caps}" ! jpegparse ! rtpjpegpay name=pay0 pt=26 )'
    )
    for index, name in enumerate(mounts.names):
        factory = GstRtspServer.RTSPMediaFactory()
        factory.set_launch(launch)
        factory.set_shared(True)
        factory.connect("media-configure", lambda _f, media, i=index: mounts.attach(i, media))
        server.get_mount_points().add_factory(f"/{name}", factory)
    loop = GLib.MainLoop()
    if server.attach(None) == 0:
        sys.stderr.write(f"rtsp server: cannot listen on {args.host}:{args.port} (port in use?)\n")
        return 1
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGTERM, lambda: loop.quit() or False)
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGINT, lambda: loop.quit() or False)
    GLib.timeout_add_seconds(1, lambda: (loop.quit() or False) if _parent_gone() else True)
    threading.Thread(target=_feed, args=(mounts, loop), name="rtsp-feed", daemon=True).start()
    sys.stdout.write(f"READY {args.port}\n")
    sys.stdout.flush()
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
