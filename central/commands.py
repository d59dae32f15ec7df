"""Commands to edges (`cmd/{name}`) and the wait for their `cmd_result`, matched by request_id."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from central.metrics import Metrics
from central.workflow import Actor
from gridwatch.config.models import SiteConfig
from gridwatch.contract import uplink
from gridwatch.contract.uplink import CmdResult, UplinkKind, uplink_topic

log = logging.getLogger(__name__)

Publisher = Callable[[str, bytes], Awaitable[None]]
Recorder = Callable[[str, str, dict[str, Any], Actor, str | None], None]
"""`CentralService.register_command(request_id, name, body, actor, edge)`: audit + tie results to grids."""


class NoEdge(LookupError):
    """No edge in the config serves the grid, zone or device."""


class BrokerDown(RuntimeError):
    """The uplink broker connection is not up, so the command cannot be sent."""


def new_request_id() -> str:
    return uuid.uuid4().hex


def edge_for_grid(site: SiteConfig, grid_id: str) -> str:
    """The edge serving the grid: the one whose `areas` hold the grid's area, else the only edge."""
    index = site.grid_index()
    if grid_id not in index:
        raise KeyError(grid_id)
    area = index[grid_id][0]
    for edge in site.edges:
        if area.id in edge.areas:
            return edge.id
    if len(site.edges) == 1:
        return site.edges[0].id
    raise NoEdge(f"no edge serves area '{area.id}' of grid '{grid_id}' (list it under an edge's `areas`)")


def edge_for_zone(site: SiteConfig, zone_id: str) -> str:
    for edge in site.edges:
        if zone_id in site.edge_zone_ids(edge):
            return edge.id
    if len(site.edges) == 1:
        return site.edges[0].id
    raise NoEdge(f"no edge serves zone '{zone_id}'")


def edge_for_device(site: SiteConfig, device_id: str) -> str:
    for edge in site.edges:
        if device_id in site.edge_device_ids(edge):
            return edge.id
    if len(site.edges) == 1:
        return site.edges[0].id
    raise NoEdge(f"no edge serves device '{device_id}'")


class Commands:
    """Sends commands over the uplink broker and resolves a future per request_id on `cmd_result`.

    Lives on the event loop; `resolve` is called by the ingest loop (same loop) for every cmd_result.
    """

    def __init__(self, site: SiteConfig, metrics: Metrics) -> None:
        self.site = site
        self.metrics = metrics
        self._publish: Publisher | None = None
        self.recorder: Recorder | None = None
        self._pending: dict[str, asyncio.Future[CmdResult]] = {}

    def attach(self, publish: Publisher | None) -> None:
        """Set (or clear, on disconnect) the coroutine that publishes one QoS 1 message."""
        self._publish = publish

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def send(
        self,
        edge: str,
        body: uplink.RollcallCmd | uplink.ArmCmd | uplink.MaintenanceCmd | uplink.WalkTestCmd,
        timeout: float,
        actor: Actor | None = None,
    ) -> CmdResult | None:
        """Record (audit) and publish `cmd/{name}` to `edge`, then wait up to `timeout` s; None on timeout."""
        name = next(n for n, cls in uplink.CMD_BODIES.items() if isinstance(body, cls))
        if self._publish is None:
            self.metrics.commands.labels(name, "broker_down").inc()
            raise BrokerDown("the uplink broker is not connected; the command was not sent")
        if actor is not None and self.recorder is not None:
            await asyncio.to_thread(self.recorder, body.request_id, name, body.model_dump(mode="json"), actor, edge)
        future: asyncio.Future[CmdResult] = asyncio.get_running_loop().create_future()
        self._pending[body.request_id] = future
        try:
            topic = uplink_topic(self.site.site.id, edge, UplinkKind.CMD, name)
            await self._publish(topic, body.model_dump_json().encode())
            try:
                result = await asyncio.wait_for(future, timeout)
            except TimeoutError:
                self.metrics.commands.labels(name, "timeout").inc()
                log.warning("edge '%s' did not answer cmd/%s %s within %.0f s", edge, name, body.request_id, timeout)
                return None
            self.metrics.commands.labels(name, "ok" if result.ok else "failed").inc()
            return result
        finally:
            self._pending.pop(body.request_id, None)

    def resolve(self, edge: str, result: CmdResult) -> bool:
        """Complete the waiting request; False if nobody waits for it (late or foreign)."""
        future = self._pending.get(result.request_id)
        if future is None or future.done():
            log.info("cmd_result %s from edge '%s' matches no waiting request", result.request_id, edge)
            return False
        future.set_result(result)
        return True
