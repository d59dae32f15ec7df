"""Location rules at scale: positions/s through the RuleEngine for 2,000 and 10,000 tags in 200 zones,
next to a bare shapely STRtree point-in-zone pass over the same positions, in the same run.

The site is generated: a 20 × 10 grid of 20 m zones of mixed kinds (cells, workshops, yards,
staff-only, restricted, perimeter strips), 10 areas of 5 grids (40 m squares), one RTLS gateway and
people with tags (95 % inmates homed in a non-forbidden zone of their grid, 5 % staff; 1 % of the
positions of every round wander anywhere, so restricted-zone alerts open and close). Positions arrive
as RTLS batches of 100 (what a gateway sends), the engine ticks once per simulated second.

Both sides are timed in CPU seconds of this process (`time.process_time`), not wall time: the work is
single-threaded, "share of a core" is CPU time by definition, and on a shared 2-core machine wall time
also counts the time other processes held the core (it read 3-10x high under load).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from bench.run import Row
    from gridwatch.config.models import SiteConfig
    from gridwatch.contract import PositionsReading

ZONE = 20.0  # metres per zone square
COLS, ROWS = 20, 10  # 200 zones
GRID = 40.0  # a grid (officer's block) covers 2 × 2 zones
BATCH = 100  # positions per RTLS message
HZ = 10  # positions per tag per second
KINDS = ["cell"] * 8 + ["workshop"] * 4 + ["yard"] * 4 + ["staff_only", "restricted", "perimeter", "cell"]
FORBIDDEN = {"staff_only", "restricted", "perimeter"}


def _kind(col: int, row: int) -> str:
    if row in (0, ROWS - 1) and col % 5 == 0:
        return "perimeter"
    return KINDS[(col * 7 + row * 3) % len(KINDS)]


def make_site(n_tags: int, seed: int = 7) -> tuple[SiteConfig, dict[str, tuple[float, float]]]:
    """A generated site of 200 zones and `n_tags` tagged people; returns it and each tag's home point."""
    from gridwatch.config.models import SiteConfig

    rng = np.random.default_rng(seed)
    zones: list[dict[str, Any]] = []
    kinds: dict[tuple[int, int], str] = {}
    for row in range(ROWS):
        for col in range(COLS):
            x0, y0 = col * ZONE, row * ZONE
            kind = _kind(col, row)
            kinds[(col, row)] = kind
            area = f"area-{col // 2 + 1}"
            zones.append(
                {
                    "id": f"z-{col:02d}-{row:02d}",
                    "kind": kind,
                    "area": area,
                    "polygon": [[x0, y0], [x0 + ZONE, y0], [x0 + ZONE, y0 + ZONE], [x0, y0 + ZONE]],
                }
            )
    areas: dict[str, list[dict[str, Any]]] = {}
    grid_cells: dict[str, list[tuple[int, int]]] = {}
    for gr in range(int(ROWS * ZONE / GRID)):
        for gc in range(int(COLS * ZONE / GRID)):
            gid = f"g-{gc}-{gr}"
            area = f"area-{gc + 1}"
            x0, y0 = gc * GRID, gr * GRID
            areas.setdefault(area, []).append(
                {
                    "id": gid,
                    "officer": f"off-{gid}",
                    "polygon": [[x0, y0], [x0 + GRID, y0], [x0 + GRID, y0 + GRID], [x0, y0 + GRID]],
                    "expected_headcount": n_tags // 50,
                }
            )
            grid_cells[gid] = [(2 * gc + dc, 2 * gr + dr) for dc in (0, 1) for dr in (0, 1)]
    grid_ids = list(grid_cells)
    people: list[dict[str, Any]] = []
    homes: dict[str, tuple[float, float]] = {}
    for i in range(n_tags):
        gid = grid_ids[i % len(grid_ids)]
        staff = i % 20 == 19
        cells = [c for c in grid_cells[gid] if staff or kinds[c] not in FORBIDDEN] or grid_cells[gid]
        col, row = cells[int(rng.integers(len(cells)))]
        tag = f"T-{i:05d}"
        homes[tag] = (col * ZONE + float(rng.uniform(3, ZONE - 3)), row * ZONE + float(rng.uniform(3, ZONE - 3)))
        people.append({"id": f"P-{i:05d}", "role": "staff" if staff else "inmate", "grid": gid, "tag": tag})
    site = SiteConfig.model_validate(
        {
            "site": {"id": "bench-site", "timezone": "UTC"},
            "areas": [{"id": a, "supervisor": f"sup-{a}", "grids": g} for a, g in areas.items()],
            "zones": zones,
            "devices": [{"id": "rtls-1", "family": "rtls", "zone": "z-00-01", "expected_interval_s": 5}],
            "people": people,
            "edges": [{"id": "edge-1", "areas": list(areas), "zones": [z["id"] for z in zones]}],
        }
    )
    return site, homes


def make_batches(
    homes: dict[str, tuple[float, float]], seconds: int, start: datetime, seed: int = 11
) -> list[tuple[datetime, list[PositionsReading]]]:
    """For every 1/HZ s of `seconds`: every tag's position, in batches of BATCH."""
    from gridwatch.contract import Position, PositionsReading

    rng = np.random.default_rng(seed)
    tags = list(homes)
    hx = np.array([homes[t][0] for t in tags])
    hy = np.array([homes[t][1] for t in tags])
    out = []
    for r in range(seconds * HZ):
        ts = start + timedelta(seconds=r / HZ)
        x = hx + rng.normal(0, 0.7, len(tags))
        y = hy + rng.normal(0, 0.7, len(tags))
        wander = rng.random(len(tags)) < 0.01
        x[wander] = rng.uniform(0, COLS * ZONE, int(wander.sum()))
        y[wander] = rng.uniform(0, ROWS * ZONE, int(wander.sum()))
        readings = []
        for s in range(0, len(tags), BATCH):
            pos = tuple(
                Position(tag=tags[k], ts=ts, x=float(x[k]), y=float(y[k]), q=0.9)
                for k in range(s, min(s + BATCH, len(tags)))
            )
            readings.append(PositionsReading(device="rtls-1", ts=ts, positions=pos))
        out.append((ts, readings))
    return out


def _measure(n_tags: int, seconds: int) -> tuple[float, float, float, float, int]:
    """(engine s, raw s, tick s total, positions, alerts emitted) for `seconds` simulated at HZ."""
    from shapely import Polygon, STRtree, points

    from edge.rules import RuleEngine

    site, homes = make_site(n_tags)
    start = datetime(2025, 1, 6, 10, 0, tzinfo=UTC)
    rounds = make_batches(homes, seconds + 1, start)
    engine = RuleEngine(site, "edge-1")
    # warm up: every tag seen once (slots allocated), first second of alerts opened
    for ts, readings in rounds[:HZ]:
        engine.on_readings(readings, ts)
    engine.on_tick(rounds[HZ - 1][0])
    rounds = rounds[HZ:]
    alerts = 0
    tick_s = 0.0
    t0 = time.process_time()
    for r, (ts, readings) in enumerate(rounds):
        alerts += len(engine.on_readings(readings, ts))
        if r % HZ == HZ - 1:
            t1 = time.process_time()
            alerts += len(engine.on_tick(ts))
            tick_s += time.process_time() - t1
    ours = time.process_time() - t0
    tree = STRtree([Polygon(z.polygon) for z in site.zones if z.polygon])
    arrays = [np.array([[p.x, p.y] for p in b.positions]) for _ts, readings in rounds for b in readings]
    t0 = time.process_time()
    for arr in arrays:
        tree.query(points(arr), predicate="within")
    raw = time.process_time() - t0
    n = sum(len(b.positions) for _ts, readings in rounds for b in readings)
    return ours, raw, tick_s, n, alerts


def bench_location() -> list[Row]:
    from bench.run import Row

    rows: list[Row] = []
    for n_tags, seconds in ((2_000, 5), (10_000, 3)):
        ours, raw, tick_s, n, alerts = _measure(n_tags, seconds)
        rows.append(
            Row(
                f"location rules: {n_tags:,} tags × 200 zones, {BATCH}-position batches at {HZ} Hz "
                f"+ 1 s ticks ({alerts} transitions)",
                n / ours,
                n / raw,
                "positions/s",
                f"shapely STRtree point-in-zone, same {BATCH}-point batches",
            )
        )
        if n_tags == 10_000:
            per_s = n_tags * HZ
            ours_core = per_s * (ours - tick_s) / n + tick_s / seconds
            raw_core = per_s * raw / n
            rows.append(
                Row(
                    f"location rules: share of a core for {n_tags:,} tags at {HZ} Hz (target < 0.5)",
                    ours_core,
                    raw_core,
                    "core",
                    "STRtree point-in-zone alone at the same rate",
                    higher_is_better=False,
                )
            )
    return rows
