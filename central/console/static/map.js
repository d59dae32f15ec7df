// The facility map: an SVG drawn from GET /site (metres, x east, y north), alarms and live tags.
import { api } from "./api.js";
import { wfState, levelRank } from "./util.js";

const SVG = "http://www.w3.org/2000/svg";
const PAD = 6;
let box = { minX: 0, minY: 0, maxX: 100, maxY: 100 };
let layers = {};
let positionsTimer = null;

function s(tag, attrs = {}, text) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined && v !== null) el.setAttribute(k, v);
  if (text !== undefined) el.textContent = text;
  return el;
}

// y grows north on site, south on screen
const px = (x) => x - box.minX + PAD;
const py = (y) => box.maxY - y + PAD;
const points = (poly) => poly.map(([x, y]) => `${px(x)},${py(y)}`).join(" ");

function centroid(poly) {
  const n = poly.length || 1;
  return [poly.reduce((t, p) => t + p[0], 0) / n, poly.reduce((t, p) => t + p[1], 0) / n];
}

function bounds(site) {
  const all = [];
  for (const a of site.areas || []) for (const g of a.grids || []) all.push(...(g.polygon || []));
  for (const z of site.zones || []) all.push(...(z.polygon || []));
  for (const d of [...(site.doors || []), ...(site.devices || [])]) if (d.position) all.push(d.position);
  if (!all.length) return box;
  return {
    minX: Math.min(...all.map((p) => p[0])), maxX: Math.max(...all.map((p) => p[0])),
    minY: Math.min(...all.map((p) => p[1])), maxY: Math.max(...all.map((p) => p[1])),
  };
}

/** Draw zones (coloured by kind), grids, doors and devices. */
export function drawSite(site) {
  box = bounds(site);
  const w = box.maxX - box.minX + 2 * PAD;
  const hgt = box.maxY - box.minY + 2 * PAD;
  const svg = s("svg", { viewBox: `0 0 ${w} ${hgt}`, role: "img", "aria-label": `Map of ${site.site?.name || "the site"}`, "data-testid": "map-svg" });
  layers = { zones: s("g", { class: "zones" }), grids: s("g", { class: "grids" }), doors: s("g", { class: "doors" }),
    devices: s("g", { class: "devices" }), tags: s("g", { class: "tags", "data-testid": "tags" }) };
  // zones drawn only on GPS (outdoor work parties) have no site polygon: not on this map
  for (const z of (site.zones || []).filter((zone) => zone.polygon && zone.polygon.length)) {
    const g = s("g", { class: `zone kind-${z.kind}`, "data-testid": `zone-${z.id}`, "data-zone": z.id });
    g.append(s("title", {}, `${z.name} (${z.kind})`));
    g.append(s("polygon", { points: points(z.polygon) }));
    const [cx, cy] = centroid(z.polygon);
    if (z.kind !== "perimeter") g.append(s("text", { x: px(cx), y: py(cy) + 7, class: "zone-label" }, z.name));
    layers.zones.append(g);
  }
  for (const a of site.areas || []) {
    for (const gr of (a.grids || []).filter((grid) => grid.polygon && grid.polygon.length)) {
      const g = s("g", { class: "grid", "data-testid": `grid-${gr.id}` });
      g.append(s("title", {}, `${gr.name} · officer ${gr.officer || "-"} · expected ${gr.expected_headcount ?? "?"}`));
      g.append(s("polygon", { points: points(gr.polygon) }));
      const [cx, cy] = centroid(gr.polygon);
      g.append(s("text", { x: px(cx), y: py(cy), class: "grid-label" }, gr.id));
      layers.grids.append(g);
    }
  }
  for (const d of site.doors || []) {
    if (!d.position) continue;
    const g = s("g", { class: "door", "data-testid": `door-${d.id}` });
    g.append(s("title", {}, `door ${d.name || d.id}`));
    g.append(s("rect", { x: px(d.position[0]) - 1.6, y: py(d.position[1]) - 1.6, width: 3.2, height: 3.2 }));
    layers.doors.append(g);
  }
  for (const d of site.devices || []) {
    if (!d.position) continue;
    const g = s("g", { class: `device fam-${d.family}`, "data-testid": `device-${d.id}`, "data-device": d.id });
    g.append(s("title", {}, `${d.id} (${d.family})`));
    const [x, y] = [px(d.position[0]), py(d.position[1])];
    g.append(d.family === "camera"
      ? s("polygon", { points: `${x - 2},${y + 1.6} ${x + 2},${y + 1.6} ${x},${y - 2}` })
      : s("circle", { cx: x, cy: y, r: 1.3 }));
    layers.devices.append(g);
  }
  svg.append(layers.zones, layers.grids, layers.doors, layers.devices, layers.tags);
  document.getElementById("map").replaceChildren(svg);
  drawLegend(site);
}

function drawLegend(site) {
  const kinds = [...new Set((site.zones || []).map((z) => z.kind))];
  const legend = document.getElementById("legend");
  legend.replaceChildren(...kinds.map((k) => {
    const el = document.createElement("span");
    el.className = `key kind-${k}`;
    el.textContent = k.replace("_", " ");
    return el;
  }), Object.assign(document.createElement("span"), { className: "key tag-key", textContent: "tag" }),
  Object.assign(document.createElement("span"), { className: "key alarm-key", textContent: "▲ zone in alarm" }));
}

/** Mark zones and devices of alarms that are active or not yet acknowledged; outline the selected one. */
export function showAlarms(alerts, selected) {
  const worst = new Map();
  const devs = new Set();
  for (const a of alerts) {
    const wf = wfState(a);
    if (wf === "closed" || wf === "shelved") continue;
    if (a.condition !== "active" && wf !== "new") continue;
    if (a.zone && levelRank(a.level) > levelRank(worst.get(a.zone))) worst.set(a.zone, a.level);
    for (const d of a.devices || []) devs.add(d);
  }
  for (const g of layers.zones?.children || []) {
    const level = worst.get(g.dataset.zone);
    g.classList.toggle("alarm", Boolean(level));
    if (level) g.dataset.alarm = level;
    else delete g.dataset.alarm;
    g.classList.toggle("selected", Boolean(selected && selected.zone === g.dataset.zone));
  }
  for (const g of layers.devices?.children || []) g.classList.toggle("alarm", devs.has(g.dataset.device));
}

/** Poll GET /positions every 2 s and draw one dot per tag. */
export function startPositions() {
  stopPositions();
  const tick = async () => {
    try {
      drawTags(await api("/positions"));
    } catch (err) {
      if (err.status === 401) return stopPositions();
    }
  };
  tick();
  positionsTimer = setInterval(tick, 2000);
}

export function stopPositions() {
  if (positionsTimer) clearInterval(positionsTimer);
  positionsTimer = null;
}

function drawTags(list) {
  if (!layers.tags) return;
  const items = Array.isArray(list) ? list : list?.items || [];
  layers.tags.replaceChildren(...items.filter((p) => p.x != null && p.y != null).map((p) => {
    const c = s("circle", { cx: px(p.x), cy: py(p.y), r: 1.1, class: String(p.person || "").startsWith("S-") ? "tag staff" : "tag", "data-testid": "tag-dot", "data-tag": p.tag });
    c.append(s("title", {}, `${p.tag}${p.person ? ` · ${p.person}` : ""}${p.grid ? ` · ${p.grid}` : ""}`));
    return c;
  }));
}
