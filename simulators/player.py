"""The scenario player: a living facility on the device broker, with the scripted story on top.

It publishes exactly what real hardware would (through `simulators.encoders`, the inverse of the
drivers): retained `online` status for every device and keep-alives at half their expected
interval, RTLS batches from each ward's gateway, wristband telemetry, and at each step's time the
step's readings. Step times (`at`) are divided by `speed`; durations inside steps (a silent tag,
a vitals override, a camera event) are real seconds, because the edge's timers run in real time.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

import paho.mqtt.client as paho

from drivers import DeviceContext
from gridwatch.config import Device, SiteConfig
from gridwatch.contract import (
    AccessReading,
    PerimeterReading,
    Position,
    PositionsReading,
    Reading,
    VitalsReading,
    WristbandEventReading,
)
from gridwatch.contract.devices import GpsFix
from gridwatch.contract.enums import Family
from gridwatch.mqtt import sync_client
from simulators import encoders
from simulators.scenario import (
    AccessAction,
    BrokerDropAction,
    CameraAction,
    DeviceAction,
    FaultAction,
    GatherAction,
    MoveAction,
    PerimeterAction,
    PersonAction,
    Scenario,
    Step,
    TagSilentAction,
    VitalsAction,
    WristbandAction,
)
from simulators.sessions import DeviceSessions, StatusTopic
from simulators.world import Walker, World

log = logging.getLogger("gridwatch.sim")

TICK_S = 0.1


class Publisher(Protocol):
    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None: ...

    def drop(self, seconds: float) -> None:
        """Lose the link to the broker for `seconds`; what is published meanwhile is sent afterwards."""


CameraControl = Callable[[str, str, float], None]
"""camera_control(camera_id, event, seconds): drives the camera simulator."""


class MqttPublisher:
    """Publishes QoS 1 through paho on its own network thread; counts what it sent."""

    def __init__(self, url: str, identifier: str = "gridwatch-sim") -> None:
        from gridwatch.config import BrokerUrl

        self.url = BrokerUrl.parse(url)
        self.client = sync_client(self.url, identifier)
        self.sent = 0
        self._connected = threading.Event()
        self.client.on_connect = lambda _c, _u, _f, rc, _p=None: self._connected.set() if not rc.is_failure else None
        self._lock = threading.Lock()
        self._down_until = 0.0
        self._buffer: deque[tuple[str, bytes, bool]] = deque(maxlen=1_000_000)
        self._pending: deque[paho.MQTTMessageInfo] = deque()

    def connect(self, timeout: float = 10.0) -> None:
        self.client.connect(self.url.host, self.url.port)
        self.client.loop_start()
        if not self._connected.wait(timeout):
            self.client.loop_stop()
            raise ConnectionError(f"device broker {self.url.redacted()} did not answer within {timeout} s")

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        with self._lock:
            if time.monotonic() < self._down_until:
                self._buffer.append((topic, payload, retain))  # a device keeps what it could not send
                return
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        self.sent += 1
        self._pending.append(info)
        if len(self._pending) > 10_000:
            self._pending = deque(i for i in self._pending if not _published(i))

    def drop(self, seconds: float) -> None:
        with self._lock:
            self._down_until = time.monotonic() + seconds
        self.client.disconnect()
        self.client.loop_stop()
        threading.Timer(seconds, self._restore).start()

    def _restore(self) -> None:
        self._connected.clear()
        try:
            self.client.reconnect()
            self.client.loop_start()
            self._connected.wait(10)
        except OSError as exc:
            log.warning("simulator could not reconnect to %s: %s", self.url.redacted(), exc)
        with self._lock:
            self._down_until = 0.0
            pending = list(self._buffer)
            self._buffer.clear()
        for topic, payload, retain in pending:
            self.publish(topic, payload, retain=retain)

    def close(self, timeout: float = 10.0) -> None:
        """Disconnect once the broker has acknowledged what was published (up to `timeout`)."""
        deadline = time.monotonic() + timeout
        for info in self._pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            if not _published(info):
                # published while the link was down (rc NO_CONN): paho queued it and sends it after
                # reconnecting, but wait_for_publish refuses such a message; poll instead
                while not _published(info) and time.monotonic() < deadline:
                    time.sleep(0.01)
        self.client.disconnect()
        self.client.loop_stop()


def _published(info: paho.MQTTMessageInfo) -> bool:
    """Acknowledged by the broker; paho raises for messages queued while disconnected, so ask safely."""
    try:
        return bool(info.is_published())
    except (RuntimeError, ValueError):
        return info._published  # the flag paho sets when the PUBACK arrives, whatever rc said


@dataclass
class _Timer:
    period_s: float
    due: float = 0.0


@dataclass
class PlayedStep:
    step: Step
    index: int  # its place in `Scenario.steps` (file order), whatever the order it plays in
    wall_time: float  # time.time() when its readings were handed to the broker client


@dataclass
class _State:
    silenced: dict[str, float] = field(default_factory=dict)  # device id → real time traffic resumes
    later: list[tuple[float, Callable[[], None]]] = field(default_factory=list)
    faults: list[tuple[float, FaultAction]] = field(default_factory=list)  # (until, fault)
    held: list[tuple[str, bytes, bool]] = field(default_factory=list)  # messages held back to reorder


_GARBAGE = (
    lambda p: p[: max(1, len(p) // 2)],  # truncated
    lambda p: b"\xff\xfe" + p,  # not UTF-8
    lambda p: p.replace(b'"ts"', b'"ts":"yesterday","x"', 1),  # wrong types
    lambda p: b'{"hr": -5, "x": NaN, "band": "W-0001"}',  # out of range
    lambda p: bytes(range(256))[: 32 + len(p) % 64],  # noise
)


def _skewed(reading: Reading, seconds: float) -> Reading:
    shift = timedelta(seconds=seconds)
    update: dict[str, object] = {"ts": reading.ts + shift}
    if isinstance(reading, PositionsReading):
        update["positions"] = tuple(p.model_copy(update={"ts": p.ts + shift}) for p in reading.positions)
    return reading.model_copy(update=update)


def _now() -> datetime:
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


class ScenarioPlayer:
    def __init__(
        self,
        site: SiteConfig,
        scenario: Scenario,
        publisher: Publisher,
        *,
        speed: float = 1.0,
        camera_control: CameraControl | None = None,
        sessions: DeviceSessions | None = None,
    ) -> None:
        """`sessions`: one connection per device carrying its will (status goes there, readings through
        `publisher`); without it every status is a retained message on the shared publisher."""
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.site = site
        self.scenario = scenario
        self.publisher = publisher
        self.speed = speed
        self.camera_control = camera_control
        self.sessions = sessions
        self.world = World(site, seed=scenario.background.seed)
        self.contexts = {d.id: DeviceContext.from_config(d) for d in site.devices}
        self.played: list[PlayedStep] = []
        self.published = 0
        self.positions_sent = 0
        self._rng = random.Random(scenario.background.seed)
        self._state = _State()
        self._detector_device = self._index_detectors(site.devices)
        self._door_device = {d.door: d.id for d in site.devices if d.family == Family.ACCESS and d.door}
        self._rtls_of, self._band_gateway_of = self._gateways()

    # -- set-up ------------------------------------------------------------------------------
    @staticmethod
    def _index_detectors(devices: list[Device]) -> dict[str, str]:
        out = {d.id: d.id for d in devices if d.family == Family.PERIMETER_IR and d.format == "json"}
        for d in devices:
            for m in d.contact_id:
                out[m.detector] = d.id
        return out

    def _gateways(self) -> tuple[dict[str, str], dict[str, str]]:
        """The RTLS gateway hearing each tag and the wristband gateway relaying each band: those of its area."""
        area_of_zone = {z.id: z.area for z in self.site.zones}
        area_of_grid = {g: a.id for g, (a, _g) in self.site.grid_index().items()}
        by_family: dict[Family, dict[str | None, str]] = {Family.RTLS: {}, Family.WRISTBAND: {}}
        for d in self.site.devices:
            if d.family in by_family:
                by_family[d.family].setdefault(area_of_zone.get(d.zone) if d.zone else None, d.id)
        persons = {p.id: p for p in self.site.people}

        def pick(family: Family, person: str) -> str | None:
            options = by_family[family]
            if not options:
                return None
            area = area_of_grid.get(persons[person].grid or "")
            return options.get(area) or next(iter(options.values()))

        rtls = {w.tag: g for w in self.world.walkers.values() if w.tag and (g := pick(Family.RTLS, w.person))}
        bands = {w.band: g for w in self.world.walkers.values() if w.band and (g := pick(Family.WRISTBAND, w.person))}
        return rtls, bands

    # -- publishing --------------------------------------------------------------------------
    def _fault(self, device_id: str) -> FaultAction | None:
        if not self._state.faults:
            return None
        mono = time.monotonic()
        self._state.faults = [(until, f) for until, f in self._state.faults if until > mono]
        return next((f for _u, f in self._state.faults if f.device in (None, device_id)), None)

    def _send(self, reading: Reading, device_id: str, **kwargs: bool) -> None:
        if time.monotonic() < self._state.silenced.get(device_id, 0.0):
            return
        fault = self._fault(device_id)
        if fault is not None and fault.clock_skew_s:
            reading = _skewed(reading, fault.clock_skew_s)
        topic, payload = encoders.encode(reading, self.contexts[device_id], self.site.site.id, **kwargs)
        self._emit(topic, payload, fault)

    def _status(self, device_id: str, online: bool) -> None:
        ctx, site = self.contexts[device_id], self.site.site.id
        if self.sessions is None:
            topic, payload = encoders.encode_status(ctx, site, online)
            self._emit(topic, payload, None, retain=True)
            return
        topic, on = encoders.encode_status(ctx, site, True)
        status = StatusTopic(topic, on, encoders.encode_status(ctx, site, False)[1])
        if online:
            self.sessions.up(device_id, status)
        else:
            self.sessions.say_offline(device_id, status)
        self.published += 1

    def _crash(self, device_id: str) -> None:
        """The device dies without a word: its broker session ends abruptly and the broker sends its will."""
        if self.sessions is not None and self.sessions.crash(device_id):
            return
        log.warning("device %s has no session of its own: publishing the `offline` its will would carry", device_id)
        topic, payload = encoders.encode_status(self.contexts[device_id], self.site.site.id, False)
        self._emit(topic, payload, None, retain=True)

    def _emit(self, topic: str, payload: bytes, fault: FaultAction | None, *, retain: bool = False) -> None:
        held, self._state.held = self._state.held, []
        if fault is not None:
            if self._rng.random() < fault.malformed_rate:
                payload = self._rng.choice(_GARBAGE)(payload)
            if self._rng.random() < fault.reorder_rate:
                self._state.held = [*held, (topic, payload, retain)]
                return
        self.publisher.publish(topic, payload, retain=retain)
        self.published += 1
        if fault is not None and self._rng.random() < fault.duplicate_rate:
            self.publisher.publish(topic, payload, retain=retain)
            self.published += 1
        for h_topic, h_payload, h_retain in held:  # the held-back message arrives after a later one
            self.publisher.publish(h_topic, h_payload, retain=h_retain)
            self.published += 1

    @property
    def target_positions_per_s(self) -> float:
        """What the background asks for: every audible tag at positions_hz."""
        return self.scenario.background.positions_hz * sum(1 for tag in self.world.by_tag if tag in self._rtls_of)

    def announce(self) -> None:
        """Every device says `online` (retained), as real devices do when they connect."""
        for device_id in self.contexts:
            self._status(device_id, True)

    def _positions(self, mono: float) -> None:
        now = _now()
        batches: dict[str, list[Position]] = {}
        for w in self.world.tag_positions(mono):
            gateway = self._rtls_of.get(w.tag or "")
            if gateway is None or w.tag is None:
                continue
            batches.setdefault(gateway, []).append(
                Position(tag=w.tag, ts=now, x=round(w.x, 2), y=round(w.y, 2), z=0.0, q=0.9, bat=round(w.bat))
            )
        for gateway, positions in batches.items():
            self._send(PositionsReading(device=gateway, ts=now, positions=tuple(positions)), gateway)
            self.positions_sent += len(positions)

    def _vitals_of(self, w: Walker, mono: float) -> None:
        gateway = self._band_gateway_of.get(w.band or "")
        if gateway is None or w.band is None:
            return
        values = self.world.vitals(w, mono)
        gps = None
        if w.gps:
            lat, lon = self.world.to_gps(w.x, w.y)
            gps = GpsFix(lat=round(lat, 7), lon=round(lon, 7), acc_m=5.0)
        self._send(
            VitalsReading(
                device=gateway,
                ts=_now(),
                band=w.band,
                hr=values["hr"],
                temp=values["temp"],
                bat=values["bat"],
                strap="closed",
                gps=gps,
            ),
            gateway,
        )

    def _keepalives(self, mono: float, timers: dict[str, _Timer]) -> None:
        for device_id, timer in timers.items():
            if mono >= timer.due:
                timer.due = mono + timer.period_s
                if mono >= self._state.silenced.get(device_id, 0.0):
                    self._status(device_id, True)

    def _passage(self) -> None:
        """Someone shows a card at a door that is in service now, opens it and lets it close."""
        from zoneinfo import ZoneInfo

        now = datetime.now(UTC)
        tz = ZoneInfo(self.site.site.timezone)
        doors = [d for d in self.site.doors if d.id in self._door_device and d.schedule.active(now, tz)]
        if not doors:
            return
        door = self._rng.choice(doors).id
        device = self._door_device[door]
        card = f"{self._rng.randrange(1, 255)}:{self._rng.randrange(1, 65535)}"
        grant = AccessReading(device=device, ts=_now(), door=door, reader=device, event="granted", card=card)
        self._send(grant, device)

        def open_() -> None:
            self._send(AccessReading(device=device, ts=_now(), door=door, reader=device, event="door_open"), device)

        def close() -> None:
            self._send(AccessReading(device=device, ts=_now(), door=door, reader=device, event="door_closed"), device)

        mono = time.monotonic()
        self._state.later += [(mono + 0.5, open_), (mono + 3.0, close)]

    # -- steps -------------------------------------------------------------------------------
    def _do(self, step: Step) -> None:
        name, action = step.action
        mono = time.monotonic()
        now = _now()
        if action is None:
            return  # a watch-only step: its expect_none window starts now
        log.info("step at %.1fs: %s %s", step.at, name, action.model_dump(exclude_none=True))
        if isinstance(action, PerimeterAction):
            device = self._detector_device[action.detector]
            self._send(
                PerimeterReading(device=device, ts=now, detector=action.detector, beam=action.beam, state=action.state),
                device,
            )
        elif isinstance(action, AccessAction):
            device = self._door_device[action.door]
            reading = AccessReading(
                device=device,
                ts=now,
                door=action.door,
                reader=device,
                event=action.event,
                card=action.card,
                direction=action.direction,
            )
            if action.wiegand:
                self._send(reading, device, wiegand=True)
            else:
                self._send(reading, device)
        elif isinstance(action, MoveAction):
            self.world.walk_to(action.person, action.to, action.speed_mps)
        elif isinstance(action, PersonAction):
            self.world.release(action.person)
        elif isinstance(action, TagSilentAction):
            self.world.silence(action.person, mono + action.seconds)
        elif isinstance(action, WristbandAction):
            gateway = self._band_gateway_of[action.band]
            self._send(WristbandEventReading(device=gateway, ts=now, band=action.band, event=action.event), gateway)
        elif isinstance(action, VitalsAction):
            values = {k: v for k, v in (("hr", action.hr), ("temp", action.temp), ("bat", action.bat)) if v is not None}
            self.world.set_vitals(action.band, values, mono + action.seconds)
            self._vitals_of(self.world.by_band[action.band], mono)
        elif isinstance(action, CameraAction):
            if self.camera_control is None:
                log.warning("step at %.1fs: no camera simulator to drive (give --camera-control)", step.at)
            else:
                self.camera_control(action.camera, action.event, action.seconds)
        elif isinstance(action, DeviceAction):
            if action.crash:
                self._crash(action.id)
            else:
                self._status(action.id, action.online)
            if action.silent_s is not None:
                self._state.silenced[action.id] = mono + action.silent_s
        elif isinstance(action, FaultAction):
            self._state.faults.append((mono + action.seconds, action))
        elif isinstance(action, BrokerDropAction):
            self.publisher.drop(action.seconds)
        elif isinstance(action, GatherAction):
            people = self.world.gather(action.zone, action.count, mono, action.seconds)

            def disperse() -> None:
                for person in people:
                    self.world.release(person)

            self._state.later.append((mono + action.seconds, disperse))

    # -- the loop ----------------------------------------------------------------------------
    def run(
        self,
        *,
        loop: bool = False,
        stop: threading.Event | None = None,
        on_step: Callable[[PlayedStep], None] | None = None,
    ) -> None:
        """Play the scenario (forever with `loop`); returns at its end or when `stop` is set."""
        stop = stop or threading.Event()
        bg = self.scenario.background
        timers = {
            d.id: _Timer(d.expected_interval_s / 2)
            for d in self.site.devices
            if bg.keepalive and d.expected_interval_s is not None
        }
        pos_period = 1.0 / bg.positions_hz if bg.positions_hz > 0 else None
        self.announce()
        while not stop.is_set():
            steps = self.scenario.timeline()
            start = time.monotonic()
            next_pos = start
            next_vitals = start
            index = 0
            last = start
            prev_tick = start
            passages = 0.0
            while not stop.is_set():
                mono = time.monotonic()
                t = (mono - start) * self.speed
                self.world.step(mono, mono - last)
                last = mono
                while index < len(steps) and steps[index][1].at <= t:
                    file_index, step = steps[index]
                    self._do(step)
                    played = PlayedStep(step, file_index, time.time())
                    self.played.append(played)
                    if on_step is not None:
                        on_step(played)
                    index += 1
                for due, fn in [x for x in self._state.later if x[0] <= mono]:
                    self._state.later.remove((due, fn))
                    fn()
                if pos_period is not None and mono >= next_pos:
                    # keep the schedule (no drift from the tick's jitter); if far behind, start afresh
                    next_pos = next_pos + pos_period if mono - next_pos < pos_period else mono + pos_period
                    self._positions(mono)
                if bg.vitals_s > 0 and mono >= next_vitals:
                    next_vitals = mono + bg.vitals_s
                    for w in self.world.by_band.values():
                        self._vitals_of(w, mono)
                self._keepalives(mono, timers)
                if bg.access_rate_hz > 0:
                    passages += bg.access_rate_hz * (mono - prev_tick)
                    while passages >= 1:
                        passages -= 1
                        self._passage()
                prev_tick = mono
                if t >= self.scenario.length_s and index >= len(steps):
                    break
                stop.wait(max(0.0, TICK_S - (time.monotonic() - mono)))  # ticks on time, whatever the work took
            if not loop:
                return
            for person in list(self.world.walkers):
                if self.world.walkers[person].pinned is not None:
                    self.world.release(person)
            self._state.silenced.clear()
            self.announce()
            log.info("scenario %r: starting again", self.scenario.name)
