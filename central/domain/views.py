"""How domain rows look to the API and SSE subscribers: plain JSON-ready dicts.

One function per row type, shared by the queries that list rows and the writes that publish
them, so an `alert` SSE event and `GET /alerts/{id}` can never disagree on a field.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from central.store.models import Alert, DeviceRow, EdgeRow, PositionRow, Transition, WorkflowEntry
from gridwatch.config.models import Device, Edge


def ts(value: datetime | None) -> str | None:
    """An instant as RFC 3339 in UTC, or None."""
    return None if value is None else value.astimezone(UTC).isoformat()


ALERT_ITEM_FIELDS = (
    "id", "rule", "level", "condition", "workflow", "site", "edge", "area", "grid", "zone", "subject_kind",
    "subject_id", "devices", "title", "first_seen", "last_change", "snapshot", "escalated_to", "detail",
    "suppressed", "origin", "resolution", "officer", "shelved_until",
)  # fmt: skip
"""The `Alert` attributes an alert item is made of, in the order `alert_item_from_row` takes them."""
ALERT_ITEM_COLUMNS = tuple(Alert.__table__.c[name] for name in ALERT_ITEM_FIELDS)
"""Select these (not the `Alert` entity) to list alerts: rows for `alert_item_from_row`, no ORM objects."""
ALERT_ITEM_TIME_FIELDS = frozenset({"first_seen", "last_change", "shelved_until"})


def alert_item(a: Alert) -> dict[str, Any]:
    """An alert as CONTRACT §4.0 shapes it, plus detail, suppressed and workflow extras."""
    return alert_item_from_row(tuple(getattr(a, name) for name in ALERT_ITEM_FIELDS))


def sqlite_ts(text: str | None) -> str | None:
    """`ts` of a date-time SQLite stores as SQLAlchemy writes it (naive UTC `YYYY-MM-DD HH:MM:SS.ffffff`).

    A page of alerts has three date-times per row: parsing each stored text into a datetime and
    formatting it again was a third of a list request. Text of any other shape is parsed.
    """
    if text is None:
        return None
    if len(text) == 26 and text[10] == " " and text[19] == "." and text[4] == text[7] == "-" and text[13] == ":":
        if text.endswith(".000000"):  # `isoformat` leaves out zero microseconds
            return f"{text[:10]}T{text[11:19]}+00:00"
        return f"{text[:10]}T{text[11:]}+00:00"
    value = datetime.fromisoformat(text)
    return ts(value if value.tzinfo is not None else value.replace(tzinfo=UTC))


def alert_item_from_row(row: Sequence[Any], stamp: Callable[[Any], str | None] = ts) -> dict[str, Any]:
    """`alert_item` of a row of `ALERT_ITEM_COLUMNS` (a page of a list is read as plain rows).

    `stamp` turns the row's date-time values into RFC 3339: `ts` for datetimes, `sqlite_ts` for the
    stored text a SQLite list query selects instead.
    """
    (
        id_, rule, level, condition, workflow, site, edge, area, grid, zone, subject_kind, subject_id, devices,
        title, first_seen, last_change, snapshot, escalated_to, detail, suppressed, origin, resolution, officer,
        shelved_until,
    ) = row  # fmt: skip
    return {
        "id": id_,
        "rule": rule,
        "level": level,
        "condition": condition,
        "workflow": workflow,
        "site": site,
        "edge": edge,
        "area": area,
        "grid": grid,
        "zone": zone,
        "subject": {"kind": subject_kind, "id": subject_id},
        "devices": list(devices),
        "title": title,
        "first_seen": stamp(first_seen),
        "last_change": stamp(last_change),
        "snapshot": snapshot,
        "escalated_to": escalated_to,
        "detail": detail,
        "suppressed": suppressed,
        "origin": origin,
        "resolution": resolution,
        "officer": officer,
        "shelved_until": stamp(shelved_until),
    }


def entry_dict(e: WorkflowEntry) -> dict[str, Any]:
    """One line of an alert's history; the entry's own fields win over keys in its `data`."""
    return {
        **e.data,
        "ts": ts(e.ts),
        "actor": e.actor,
        "action": e.action,
        "from": e.from_state,
        "to": e.to_state,
        "note": e.note,
    }


def transition_dict(t: Transition) -> dict[str, Any]:
    """One stored edge transition of an alert, as the edge sent it."""
    return {
        "event_id": t.event_id,
        "ts": ts(t.ts),
        "received_at": ts(t.received_at),
        "level": t.level,
        "condition": t.condition,
        "title": t.title,
        "detail": t.detail,
        "snapshot": t.snapshot,
        "suppressed": t.suppressed,
    }


def edge_dict(row: EdgeRow) -> dict[str, Any]:
    """An edge's health as its heartbeats last reported it."""
    return {
        "id": row.id,
        "online": row.online,
        "last_seen": ts(row.last_heartbeat),
        "version": row.version,
        "uptime_s": row.uptime_s,
        "config_hash": row.config_hash,
        "outbox": row.outbox,
        "offline_alert": row.offline_alert,
    }


def unheard_edge_dict(e: Edge) -> dict[str, Any]:
    """A configured edge central has never heard from: listed, so a missing edge is visible."""
    return {
        "id": e.id,
        "online": False,
        "last_seen": None,
        "version": None,
        "uptime_s": None,
        "config_hash": None,
        "outbox": {},
        "offline_alert": None,
    }


def device_dict(row: DeviceRow) -> dict[str, Any]:
    """A device's health as its edge last reported it, plus central's maintenance state."""
    return {
        "id": row.id,
        "edge": row.edge,
        "family": row.family,
        "online": row.online,
        "last_seen": ts(row.last_seen),
        "battery": row.battery,
        "dead_letters": row.dead_letters,
        "out_of_service_until": ts(row.out_of_service_until),
        "out_of_service_reason": row.out_of_service_reason,
    }


def unreported_device_dict(d: Device) -> dict[str, Any]:
    """A configured device no edge has reported yet."""
    return {
        "id": d.id,
        "edge": None,
        "family": d.family.value,
        "online": None,
        "last_seen": None,
        "battery": None,
        "dead_letters": 0,
        "out_of_service_until": None,
        "out_of_service_reason": None,
    }


def position_dict(r: PositionRow) -> dict[str, Any]:
    """A latest position: `tag`/x/y/z for indoor positioning, `band`/lat/lon/acc_m for GPS."""
    kind, source = r.key.split(":", 1)
    out: dict[str, Any] = {
        "person": r.person,
        kind: source,
        "kind": r.kind,
        "grid": r.grid,
        "ts": ts(r.ts),
        "edge": r.edge,
    }
    if r.kind == "gps":
        out.update(lat=r.lat, lon=r.lon, acc_m=r.acc_m)
    else:
        out.update(x=r.x, y=r.y, z=r.z)
    return out
