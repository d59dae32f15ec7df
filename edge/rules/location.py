"""Location rules over RTLS tag positions: restricted zones, out of grid, gathering, stationary,
tag lost, curfew (site-metre home zones) and roll calls. Positions live in numpy arrays indexed by
tag slot so that a 10k-tag batch costs a few vectorised shapely/scipy calls, not 10k Python loops.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import shapely
from numpy.typing import NDArray
from scipy.spatial import cKDTree
from shapely import STRtree

from gridwatch.contract.enums import Level, PersonRole, SubjectKind, ZoneKind
from gridwatch.contract.readings import PositionsReading

from .alerts import AlertBook
from .context import Controls, SiteView

FORBIDDEN = (ZoneKind.RESTRICTED, ZoneKind.STAFF_ONLY, ZoneKind.PERIMETER)
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
        self.zone: list[str | None] = []

    def __len__(self) -> int:
        return len(self.person)

    def add(self, person_id: str, tag: str, inmate: bool, supervised: bool, grid: int) -> int:
        i = len(self.person)
        if i == len(self.x):
            for name in ("x", "y", "seen", "ax", "ay", "at", "inmate", "supervised", "in_cell", "grid"):
                arr = getattr(self, name)
                fill = np.nan if name in ("seen", "at") else (-1 if name == "grid" else 0)
                grown = np.full(2 * len(arr), fill, dtype=arr.dtype)
                grown[: len(arr)] = arr
                setattr(self, name, grown)
        self.slot[tag] = i
        self.person.append(person_id)
        self.zone.append(None)
        self.inmate[i], self.supervised[i], self.grid[i] = inmate, supervised, grid
        return i


class LocationRules:
    def __init__(self, view: SiteView, controls: Controls, book: AlertBook) -> None:
        self.view, self.controls, self.book = view, controls, book
        self.tags = TagTable()
        self.zone_ids = sorted(z for z in view.zone_ids if z in view.zone_polys)
        self.tree = STRtree([view.zone_polys[z] for z in self.zone_ids])
        self.grid_ids = sorted(view.grid_polys)
        self.perimeter = [view.zone_polys[z] for z in self.zone_ids if view.zones[z].kind == ZoneKind.PERIMETER]
        self.gather_since: dict[str, datetime] = {}

    # -- position batches ----------------------------------------------------------------------
    def on_positions(self, r: PositionsReading, now: datetime) -> None:
        t = self.tags
        slots, xs, ys = [], [], []
        for pos in r.positions:
            i = t.slot.get(pos.tag)
            if i is None:
                person = self.view.by_tag.get(pos.tag)
                if person is None:
                    continue
                grid = self.grid_ids.index(person.grid) if person.grid in self.grid_ids else -1
                i = t.add(
                    person.id,
                    pos.tag,
                    person.role == PersonRole.INMATE,
                    person.role in (PersonRole.INMATE, PersonRole.SUPERVISEE),
                    grid,
                )
            slots.append(i)
            xs.append(pos.x)
            ys.append(pos.y)
        if not slots:
            return
        idx, x, y = np.asarray(slots), np.asarray(xs), np.asarray(ys)
        ts = now.timestamp()
        t.x[idx], t.y[idx], t.seen[idx] = x, y, ts
        moved = np.isnan(t.at[idx]) | (
            np.hypot(x - t.ax[idx], y - t.ay[idx]) > self.view.param("location.stationary", "distance_m")
        )
        m = idx[moved]
        t.ax[m], t.ay[m], t.at[m] = t.x[m], t.y[m], ts
        self._zones(idx, x, y, now)
        for i in idx.tolist():
            self.book.release("location.tag_lost", SubjectKind.PERSON, t.person[i], now)

    def _zones(self, idx: NDArray[np.int64], x: NDArray[np.float64], y: NDArray[np.float64], now: datetime) -> None:
        t = self.tags
        t.in_cell[idx] = False
        for i in idx.tolist():
            t.zone[i] = None
        inside: dict[int, str] = {}  # slot -> forbidden zone it is in
        if self.zone_ids:
            hit_in, hit_zone = self.tree.query(shapely.points(x, y), predicate="within")
            for k, z in zip(hit_in.tolist(), hit_zone.tolist(), strict=True):
                i, zid = int(idx[k]), self.zone_ids[z]
                kind = self.view.zones[zid].kind
                if kind == ZoneKind.CELL:
                    t.in_cell[i] = True
                if kind in FORBIDDEN:
                    inside[i] = zid
                    t.zone[i] = zid
                elif t.zone[i] is None:
                    t.zone[i] = zid
        for i in idx.tolist():
            pid = t.person[i]
            zid = inside.get(i)
            if zid is not None and t.supervised[i]:
                person = self.view.people[pid]
                self.book.activate(
                    "location.restricted_zone",
                    SubjectKind.PERSON,
                    pid,
                    now,
                    zone=zid,
                    grid=person.grid,
                    title=f"{person.role.capitalize()} {self.view.person_name(person)} in {self.view.zone_name(zid)}",
                    detail={
                        "x": round(float(t.x[i]), 2),
                        "y": round(float(t.y[i]), 2),
                        "zone_kind": str(self.view.zones[zid].kind),
                    },
                    devices=(person.tag,) if person.tag else (),
                )
            else:
                self.book.release("location.restricted_zone", SubjectKind.PERSON, pid, now)

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
            locked = grid.lock_in.active(now, self.view.tz)
            inside = shapely.contains_xy(self.view.grid_polys[gid], t.x[members], t.y[members])
            for i, ok in zip(members.tolist(), inside.tolist(), strict=True):
                pid = t.person[i]
                if locked and not ok:
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
            for cluster in _clusters(pts[core], radius):
                centres = core[cluster]
                group = sorted({int(j) for c in centres.tolist() for j in tree.query_ball_point(pts[c], radius)})
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
        if not self.zone_ids:
            return None
        hits = self.tree.query(shapely.Point(x, y), predicate="within")
        return self.zone_ids[int(hits[0])] if len(hits) else None

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
        for tag, i in self.tags.slot.items():
            person = self.view.people[self.tags.person[i]]
            poly = self.view.zone_polys.get(person.home_zone or "")
            if person.curfew.is_never or poly is None or not recent[i]:
                continue
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
    """Connected groups of points closer than 2·radius (their circles overlap), by union-find."""
    if not len(points):
        return []
    parent = list(range(len(points)))

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for a, b in cKDTree(points).query_pairs(2 * radius):
        parent[find(a)] = find(b)
    groups: dict[int, list[int]] = {}
    for k in range(len(points)):
        groups.setdefault(find(k), []).append(k)
    return [np.asarray(g) for g in groups.values()]
