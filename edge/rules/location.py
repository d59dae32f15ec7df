"""Location rules over RTLS tag positions: restricted zones, out of grid, gathering, stationary,
tag lost, curfew (site-metre home zones) and roll calls. Positions live in numpy arrays indexed by
tag slot so that a 10k-tag batch costs a few vectorised shapely/scipy calls, not 10k Python loops;
a batch arrives as columns (`PositionColumns`), read as they are.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import shapely
from numpy.typing import NDArray
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from gridwatch.contract.enums import Level, PersonRole, SubjectKind, ZoneKind
from gridwatch.contract.readings import PositionsReading, columns_of

from .alerts import AlertBook, Key
from .context import Controls, SiteView
from .zones import ZoneIndex

ROLLCALL_WINDOW_S = 60.0


class TagTable:
    """Latest position, last-seen time and stationary anchor of every tag seen, by slot."""

    def __init__(self) -> None:
        self.slot: dict[str, int] = {}
        self.person: list[str] = []
        n = 256
        self.x, self.y = np.zeros(n), np.zeros(n)
        self.seen = np.full(n, np.nan)  # epoch seconds of the last position
        self.ax, self.ay, self.at = np.zeros(n), np.zeros(n), np.full(n, np.nan)  # stationary anchor
        self.inmate = np.zeros(n, dtype=bool)
        self.supervised = np.zeros(n, dtype=bool)  # inmates and supervisees
        self.in_cell = np.zeros(n, dtype=bool)
        self.grid = np.full(n, -1, dtype=np.int64)
        self.zone: NDArray[np.object_] = np.full(n, None, dtype=object)  # zone id (str) or None

    def __len__(self) -> int:
        return len(self.person)

    def add(self, person_id: str, tag: str, inmate: bool, supervised: bool, grid: int) -> int:
        i = len(self.person)
        if i == len(self.x):
            for name in ("x", "y", "seen", "ax", "ay", "at", "inmate", "supervised", "in_cell", "grid", "zone"):
                arr = getattr(self, name)
                fill = np.nan if name in ("seen", "at") else (-1 if name == "grid" else None if name == "zone" else 0)
                grown = np.full(2 * len(arr), fill, dtype=arr.dtype)
                grown[: len(arr)] = arr
                setattr(self, name, grown)
        self.slot[tag] = i
        self.person.append(person_id)
        self.inmate[i], self.supervised[i], self.grid[i] = inmate, supervised, grid
        return i


class LocationRules:
    def __init__(self, view: SiteView, controls: Controls, book: AlertBook) -> None:
        self.view, self.controls, self.book = view, controls, book
        self.tags = TagTable()
        # zones in config order: where zones overlap, the first that fits decides (ZoneIndex)
        self.zone_ids = [z.id for z in view.site.zones if z.id in view.zone_ids and z.id in view.zone_polys]
        self.zones = ZoneIndex([(z, view.zones[z].kind, view.zone_polys[z]) for z in self.zone_ids])
        self.grid_ids = sorted(view.grid_polys)
        self.perimeter = [view.zone_polys[z] for z in self.zone_ids if view.zones[z].kind == ZoneKind.PERIMETER]
        self.gather_since: dict[str, datetime] = {}
        self._zone_names = np.array([*self.zone_ids, None], dtype=object)  # by ZoneIndex index; last: none
        # per tag slot: the alert keys a position releases, and the slots with a curfew to check
        self._lost_keys: list[Key] = []
        self._zone_keys: list[Key] = []
        self._curfew_slots: list[tuple[int, str]] = []

    def _slot_of(self, tag: str) -> int:
        """The tag's slot, added on its first position; -1 for a tag no person of the site carries."""
        t = self.tags
        i = t.slot.get(tag)
        if i is not None:
            return i
        person = self.view.by_tag.get(tag)
        if person is None:
            return -1
        grid = self.grid_ids.index(person.grid) if person.grid in self.grid_ids else -1
        i = t.add(
            person.id,
            tag,
            person.role == PersonRole.INMATE,
            person.role in (PersonRole.INMATE, PersonRole.SUPERVISEE),
            grid,
        )
        self._lost_keys.append(("location.tag_lost", SubjectKind.PERSON, person.id))
        self._zone_keys.append(("location.restricted_zone", SubjectKind.PERSON, person.id))
        if not person.curfew.is_never and self.view.zone_polys.get(person.home_zone or "") is not None:
            self._curfew_slots.append((i, tag))
        return i

    def _release(self, keys: list[Key], slots: list[int], now: datetime) -> None:
        """`book.release` for the alert of every slot, calling it only where an alert is active
        (for the others it does nothing): most positions have no alert to release."""
        active = self.book.active
        if active:
            for rule, kind, subject in active.keys() & [keys[i] for i in slots]:
                self.book.release(rule, kind, subject, now)

    # -- position batches ----------------------------------------------------------------------
    def on_positions(self, r: PositionsReading, now: datetime) -> None:
        t = self.tags
        columns = columns_of(r.positions)
        tags = columns.tag
        get = t.slot.get
        slots = [get(tag, -1) for tag in tags]
        if -1 in slots:  # a tag seen for the first time (or one nobody carries)
            slots = [self._slot_of(tag) for tag in tags]
        idx = np.array(slots, dtype=np.int64)
        x, y = columns.x, columns.y
        if -1 in slots:
            known = idx >= 0
            idx, x, y = idx[known], x[known], y[known]
            slots = idx.tolist()
        if not slots:
            return
        ts = now.timestamp()
        t.x[idx], t.y[idx], t.seen[idx] = x, y, ts
        moved = np.isnan(t.at[idx]) | (
            np.hypot(x - t.ax[idx], y - t.ay[idx]) > self.view.param("location.stationary", "distance_m")
        )
        m = idx[moved]
        t.ax[m], t.ay[m], t.at[m] = t.x[m], t.y[m], ts
        if len(set(slots)) == len(slots):
            self._zones(idx, slots, x, y, now)
        else:  # a tag twice in one batch: position by position, the last one stays
            self._zones_each(idx, x, y, now)
        self._release(self._lost_keys, slots, now)

    def _zones(
        self, idx: NDArray[np.int64], slots: list[int], x: NDArray[np.float64], y: NDArray[np.float64], now: datetime
    ) -> None:
        """Zone, cell flag and restricted-zone condition of each position (every tag once in `idx`),
        as `ZoneIndex.locate` decides them, over whole arrays."""
        t = self.tags
        zone_of, forbidden_of, in_cell = self.zones.locate(x, y)
        t.in_cell[idx] = in_cell
        t.zone[idx] = self._zone_names[zone_of]
        flagged = np.flatnonzero((forbidden_of < self.zones.none) & t.supervised[idx])
        for k in flagged.tolist():
            self._restricted(slots[k], self.zone_ids[int(forbidden_of[k])], float(x[k]), float(y[k]), now)
        released = slots if not flagged.size else np.delete(idx, flagged).tolist()
        self._release(self._zone_keys, released, now)

    def _zones_each(
        self, idx: NDArray[np.int64], x: NDArray[np.float64], y: NDArray[np.float64], now: datetime
    ) -> None:
        """`_zones` position by position, in order (a batch that names a tag more than once): each
        position sets its tag's zone and cell flag and raises or releases its alert; the last stays."""
        t = self.tags
        zone_of, forbidden_of, in_cell = self.zones.locate(x, y)
        names = self._zone_names[zone_of].tolist()
        rows = zip(idx.tolist(), names, in_cell.tolist(), forbidden_of.tolist(), x.tolist(), y.tolist(), strict=True)
        for i, zone, cell, forbidden, px, py in rows:
            t.zone[i], t.in_cell[i] = zone, cell
            if forbidden < self.zones.none and t.supervised[i]:
                self._restricted(i, self.zone_ids[forbidden], px, py, now)
            else:
                self.book.release("location.restricted_zone", SubjectKind.PERSON, t.person[i], now)

    def _restricted(self, i: int, zid: str, x: float, y: float, now: datetime) -> None:
        """The restricted-zone condition of slot `i`'s person, at (x, y) in zone `zid`."""
        person = self.view.people[self.tags.person[i]]
        self.book.activate(
            "location.restricted_zone",
            SubjectKind.PERSON,
            person.id,
            now,
            zone=zid,
            grid=person.grid,
            title=f"{person.role.capitalize()} {self.view.person_name(person)} in {self.view.zone_name(zid)}",
            detail={
                "x": round(x, 2),
                "y": round(y, 2),
                "zone_kind": str(self.view.zones[zid].kind),
            },
            devices=(person.tag,) if person.tag else (),
        )

    # -- every second --------------------------------------------------------------------------
    def on_tick(self, now: datetime) -> None:
        if not len(self.tags):
            return
        self._tag_lost(now)
        self._out_of_grid(now)
        self._gathering(now)
        self._stationary(now)
        self._curfew(now)

    def _recent(self, now: datetime) -> NDArray[np.bool_]:
        n = len(self.tags)
        after = self.view.param("location.tag_lost", "after_s")
        with np.errstate(invalid="ignore"):
            return np.asarray(now.timestamp() - self.tags.seen[:n] < after)

    def _tag_lost(self, now: datetime) -> None:
        t, n = self.tags, len(self.tags)
        after = self.view.param("location.tag_lost", "after_s")
        near = self.view.param("location.tag_lost", "perimeter_distance_m")
        with np.errstate(invalid="ignore"):
            lost = np.flatnonzero(now.timestamp() - t.seen[:n] >= after)
        for i in lost.tolist():
            pid = t.person[i]
            existing = self.book.get("location.tag_lost", SubjectKind.PERSON, pid)
            if existing is not None:
                self.book.activate(
                    "location.tag_lost", SubjectKind.PERSON, pid, now, title=existing.title, level=existing.level
                )
                continue
            point = shapely.Point(float(t.x[i]), float(t.y[i]))
            dist = min((p.distance(point) for p in self.perimeter), default=float("inf"))
            base = self.view.level("location.tag_lost")
            level = Level.max(base, Level.HIGH) if dist <= near else base
            person = self.view.people[pid]
            where = f", last seen {dist:.0f} m from the perimeter" if dist <= near else ""
            self.book.activate(
                "location.tag_lost",
                SubjectKind.PERSON,
                pid,
                now,
                level=level,
                zone=t.zone[i],
                grid=person.grid,
                title=f"Tag lost: {self.view.person_name(person)}{where}",
                detail={
                    "last_x": round(float(t.x[i]), 2),
                    "last_y": round(float(t.y[i]), 2),
                    "last_seen": datetime.fromtimestamp(float(t.seen[i]), now.tzinfo).isoformat(),
                    "perimeter_distance_m": None if dist == float("inf") else round(dist, 1),
                },
                devices=(person.tag,) if person.tag else (),
            )

    def _out_of_grid(self, now: datetime) -> None:
        t, n = self.tags, len(self.tags)
        recent = self._recent(now)
        outside: set[str] = set()
        for gi, gid in enumerate(self.grid_ids):
            if gid not in self.view.grid_ids:
                continue
            grid = self.view.grids[gid][1]
            members = np.flatnonzero((t.grid[:n] == gi) & t.inmate[:n] & recent)
            if not members.size:
                continue
            if not grid.lock_in.active(now, self.view.tz):
                continue
            inside = shapely.contains_xy(self.view.grid_polys[gid], t.x[members], t.y[members])
            for i in members[~inside].tolist():
                pid = t.person[i]
                outside.add(pid)
                person = self.view.people[pid]
                self.book.activate(
                    "location.out_of_grid",
                    SubjectKind.PERSON,
                    pid,
                    now,
                    zone=t.zone[i],
                    grid=gid,
                    title=f"Inmate {self.view.person_name(person)} outside {grid.name or gid} during lock-in",
                    detail={"x": round(float(t.x[i]), 2), "y": round(float(t.y[i]), 2)},
                    devices=(person.tag,) if person.tag else (),
                )
        for alert in self.book.of_rule("location.out_of_grid"):
            if alert.subject.id not in outside:
                self.book.release("location.out_of_grid", SubjectKind.PERSON, alert.subject.id, now)

    def _gathering(self, now: datetime) -> None:
        t, n = self.tags, len(self.tags)
        p = self.view.params("location.gathering")
        radius, need = float(p["radius_m"]), int(p["count"])
        members = np.flatnonzero(t.inmate[:n] & self._recent(now))
        seen_now: set[str] = set()
        if members.size >= need:
            pts = np.column_stack((t.x[members], t.y[members]))
            tree = cKDTree(pts)
            counts = np.asarray(tree.query_ball_point(pts, radius, return_length=True))
            core = np.flatnonzero(counts >= need)
            # the neighbours of every core point, in one query (one per point costs a call each)
            near = tree.query_ball_point(pts[core], radius) if core.size else np.empty(0, dtype=object)
            for cluster in _clusters(pts[core], radius):
                group = sorted(set().union(*near[cluster].tolist()))
                slots = members[group]
                cx, cy = float(pts[group, 0].mean()), float(pts[group, 1].mean())
                zid = self._zone_at(cx, cy)
                subject = zid or t.person[int(slots[0])]
                seen_now.add(subject)
                since = self.gather_since.setdefault(subject, now)
                duration = self.view.param("location.gathering", "duration_s", zid)
                if (now - since).total_seconds() < duration:
                    continue
                people = sorted(t.person[int(s)] for s in slots)
                kind = SubjectKind.ZONE if zid else SubjectKind.PERSON
                existing = self.book.get("location.gathering", kind, subject)
                self.book.activate(
                    "location.gathering",
                    kind,
                    subject,
                    now,
                    zone=zid,
                    title=f"Gathering of {len(people)} inmates, {self.view.zone_name(zid)}",
                    detail={
                        "count": len(people),
                        "people": people,
                        "x": round(cx, 2),
                        "y": round(cy, 2),
                        "since": since.isoformat(),
                    },
                    update=existing is not None and len(people) > int(existing.detail.get("count", 0)),
                )
        for subject in list(self.gather_since):
            if subject not in seen_now:
                del self.gather_since[subject]
        for alert in self.book.of_rule("location.gathering"):
            if alert.subject.id not in seen_now:
                self.book.release("location.gathering", alert.subject.kind, alert.subject.id, now)

    def _zone_at(self, x: float, y: float) -> str | None:
        """The zone of a point, by the rule of a position's zone (`ZoneIndex`)."""
        zone_of, _forbidden, _cell = self.zones.locate(np.array([x]), np.array([y]))
        return self.zone_ids[int(zone_of[0])] if zone_of[0] < self.zones.none else None

    def _stationary(self, now: datetime) -> None:
        t, n = self.tags, len(self.tags)
        duration = self.view.param("location.stationary", "duration_s")
        with np.errstate(invalid="ignore"):
            still = (now.timestamp() - t.at[:n] >= duration) & self._recent(now) & ~t.in_cell[:n]
        flagged = set(np.flatnonzero(still).tolist())
        for i in flagged:
            pid = t.person[i]
            person = self.view.people[pid]
            minutes = (now.timestamp() - float(t.at[i])) / 60
            self.book.activate(
                "location.stationary",
                SubjectKind.PERSON,
                pid,
                now,
                zone=t.zone[i],
                grid=person.grid,
                title=f"{self.view.person_name(person)} has not moved for {minutes:.0f} min, "
                f"{self.view.zone_name(t.zone[i])}",
                detail={"x": round(float(t.x[i]), 2), "y": round(float(t.y[i]), 2)},
                devices=(person.tag,) if person.tag else (),
            )
        for alert in self.book.of_rule("location.stationary"):
            slot = t.slot.get(self.view.people[alert.subject.id].tag or "")
            if slot is None or slot not in flagged:
                self.book.release("location.stationary", SubjectKind.PERSON, alert.subject.id, now)

    def _curfew(self, now: datetime) -> None:
        recent = self._recent(now)
        for i, tag in self._curfew_slots:  # the tags of people with a curfew and a home zone, in slot order
            if not recent[i]:
                continue
            person = self.view.people[self.tags.person[i]]
            poly = self.view.zone_polys[person.home_zone or ""]
            if person.curfew.active(now, self.view.tz) and not shapely.contains_xy(
                poly, self.tags.x[i], self.tags.y[i]
            ):
                self.book.activate(
                    "wristband.curfew",
                    SubjectKind.PERSON,
                    person.id,
                    now,
                    grid=person.grid,
                    devices=(tag,),
                    title=f"{self.view.person_name(person)} outside {self.view.zone_name(person.home_zone)} "
                    "during curfew",
                    detail={"x": round(float(self.tags.x[i]), 2), "y": round(float(self.tags.y[i]), 2)},
                )
            else:
                self.book.release("wristband.curfew", SubjectKind.PERSON, person.id, now)

    # -- roll call -----------------------------------------------------------------------------
    def rollcall(self, grid_id: str, now: datetime) -> tuple[list[str], list[str], list[str]]:
        """(inmates of the grid present, inmates of the grid missing, other inmates inside the grid)."""
        t, n = self.tags, len(self.tags)
        with np.errstate(invalid="ignore"):
            fresh = np.flatnonzero((now.timestamp() - t.seen[:n] <= ROLLCALL_WINDOW_S) & t.inmate[:n])
        inside_mask = shapely.contains_xy(self.view.grid_polys[grid_id], t.x[fresh], t.y[fresh])
        inside = {t.person[i] for i in fresh[inside_mask].tolist()}
        assigned = {p.id for p in self.view.site.people if p.grid == grid_id and p.role == PersonRole.INMATE}
        return sorted(inside & assigned), sorted(assigned - inside), sorted(inside - assigned)


def _clusters(points: NDArray[np.float64], radius: float) -> list[NDArray[np.int64]]:
    """Connected groups of points closer than 2·radius (their circles overlap), each in ascending
    order, the groups ordered by their first point."""
    if not len(points):
        return []
    pairs = cKDTree(points).query_pairs(2 * radius, output_type="ndarray")
    n = len(points)
    graph = coo_matrix((np.ones(len(pairs), dtype=np.int8), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    order = np.argsort(labels, kind="stable")  # by label, then by index inside a label
    starts = np.flatnonzero(np.r_[True, labels[order][1:] != labels[order][:-1]])
    groups = np.split(order, starts[1:])
    groups.sort(key=lambda g: int(g[0]))
    return groups
