"""Server-Sent Events: a broadcaster fed from service threads, one bounded queue per client."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from datetime import date, datetime
from enum import Enum
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from sse_starlette import EventSourceResponse, ServerSentEvent

from central.api.deps import stream_filter
from central.auth import require_or_query
from central.metrics import Metrics
from central.workflow import Actor

log = logging.getLogger(__name__)

EVENTS = ("alert", "escalation", "device", "edge")


def _default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return str(value)


Accept = Callable[[str, Any], bool]
"""Per client: whether it receives (event, data); see `central.api.deps.stream_filter`."""


class _Client:
    __slots__ = ("accept", "dropped", "queue")

    def __init__(self, size: int, accept: Accept | None = None) -> None:
        self.queue: asyncio.Queue[tuple[str, str] | None] = asyncio.Queue(maxsize=size)
        self.dropped = False
        self.accept = accept


class Broadcaster:
    """Fans service events out to SSE clients.

    `publish` may be called from any thread (the service calls it from worker threads after a
    commit); it hops onto the event loop with `call_soon_threadsafe`. A client whose queue is full
    is dropped (its stream ends and EventSource reconnects) rather than slowing everybody else.
    """

    def __init__(self, metrics: Metrics, queue_size: int = 256) -> None:
        self.metrics = metrics
        self.queue_size = queue_size
        self._clients: set[_Client] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.relay: Callable[[str, str], None] | None = None
        """Also hands each event of this process to the other central processes (`central.relay`)."""

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    @property
    def clients(self) -> int:
        return len(self._clients)

    def publish(self, event: str, data: Any, *, relay: bool = True) -> None:
        """Thread-safe: queue `event` with JSON `data` for every connected client (and the relay)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        text = json.dumps(data, default=_default, separators=(",", ":"))
        if relay and self.relay is not None:
            self.relay(event, text)
        try:
            loop.call_soon_threadsafe(self._fanout, event, text, data)
        except RuntimeError:  # the loop closed between the check and the call (shutdown)
            return

    def _fanout(self, event: str, text: str, data: Any = None) -> None:
        for client in list(self._clients):
            if client.accept is not None and not client.accept(event, data):
                continue
            try:
                client.queue.put_nowait((event, text))
            except asyncio.QueueFull:
                self._drop(client)

    def _drop(self, client: _Client) -> None:
        self._clients.discard(client)
        self.metrics.sse_clients.set(len(self._clients))
        self.metrics.sse_dropped.inc()
        client.dropped = True
        while not client.queue.empty():  # make room for the end marker; the client re-fetches on reconnect
            client.queue.get_nowait()
        client.queue.put_nowait(None)
        log.warning("dropped a slow SSE client (%d events queued unread)", self.queue_size)

    def open(self, accept: Accept | None = None) -> _Client:
        """Register a client now (before its stream starts), so no event published after this is missed.

        `accept(event, data)`, if given, decides which events this client receives (an officer's grids).
        """
        client = _Client(self.queue_size, accept)
        self._clients.add(client)
        self.metrics.sse_clients.set(len(self._clients))
        return client

    async def listen(self, client: _Client) -> AsyncIterator[tuple[str, str]]:
        """Yield (event, json) pairs until the client is dropped or disconnects."""
        try:
            while True:
                item = await client.queue.get()
                if item is None:
                    return
                yield item
        finally:
            self.close(client)

    def close(self, client: _Client) -> None:
        self._clients.discard(client)
        self.metrics.sse_clients.set(len(self._clients))


router = APIRouter(tags=["stream"])


@router.get(
    "/stream",
    response_class=EventSourceResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "events alert, escalation, device, edge"}},
)
async def stream(request: Request, actor: Annotated[Actor, Depends(require_or_query())]) -> EventSourceResponse:
    """Server-Sent Events: `alert` (an alert item on every change), `escalation`, `device`, `edge`; ping every 15 s.

    The token may be given as `?access_token=` because EventSource cannot send headers. An officer
    receives `alert` events of their own grids only, and no `escalation` notices.
    """
    broadcaster: Broadcaster = request.app.state.broadcaster
    client = broadcaster.open(stream_filter(request.app.state.settings, actor))

    async def events() -> AsyncIterator[ServerSentEvent]:
        try:
            # a first comment line flushes the headers at once: the client knows it is subscribed
            yield ServerSentEvent(comment="subscribed")
            async for event, text in broadcaster.listen(client):
                yield ServerSentEvent(data=text, event=event)
        finally:
            broadcaster.close(client)

    return EventSourceResponse(events(), ping=int(request.app.state.settings.sse_ping_s), send_timeout=30)
