// The facility map: an SVG drawn from GET /site (metres, x east, y north), alarms, detectors and
// cameras coloured by their health (GET /devices), live tags, and a grid panel (headcount, roll call).
import { api, ApiError } from "./api.js";
import { t } from "./i18n.js";
import { h, wfState, levelRank, fmtTime } from "./util.js";

const SVG = "http://www.w3.org/2000/svg";
const PAD = 6;
export const MAX_TAGS = 2000;
let box = { minX: 0, minY: 0, maxX: 100, maxY: 100 };
let layers = {};
let positionsTimer = null;
let siteModel = null;
let myGrids = new Set();
let health = new Map(); // device id -> device health item
let tagsShown = { shown: 0, total: 0 };
let panel = { grid: null, headcount: null, error: "", rollcall: null, busy: false };

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
  return [poly.reduce((t0, p) => t0 + p[0], 0) / n, poly.reduce((t0, p) => t0 + p[1], 0) / n];
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

/** Where a device is drawn: its own position, else (cameras) the centroid of its zone, else nowhere. */
export function devicePlace(d, zones) {
  if (d.position) return d.position;
  if (d.family !== "camera" || !d.zone) return null;
  const zone = zones.find((z) => z.id === d.zone);
  return zone?.polygon?.length ? centroid(zone.polygon) : null;
}

/** The health class of a device: online, offline, maintenance, low battery, or unknown (never reported). */
export function healthOf(item) {
  if (!item) return "unknown";
  if (item.out_of_service_until && new Date(item.out_of_service_until).getTime() > Date.now()) return "maint";
  if (item.online === false) return "offline";
  if (item.online === null || item.online === undefined) return "unknown";
  const bat = typeof item.battery === "number" ? (item.battery <= 1 ? item.battery * 100 : item.battery) : null;
  if (bat !== null && bat < 20) return "lowbat";
  return "online";
}

/** Draw zones (coloured by kind), grids (clickable), doors and devices. */
export function drawSite(site, me) {
  siteModel = site;
  myGrids = new Set(me?.role === "officer" ? me.grids || [] : []);
  box = bounds(site);
  const w = box.maxX - box.minX + 2 * PAD;
  const hgt = box.maxY - box.minY + 2 * PAD;
  const svg = s("svg", { viewBox: `0 0 ${w} ${hgt}`, role: "img", "aria-label": t("map.svgAria", { site: site.site?.name || "" }), "data-testid": "map-svg" });
  layers = { zones: s("g", { class: "zones" }), grids: s("g", { class: "grids" }), doors: s("g", { class: "doors" }),
    devices: s("g", { class: "devices" }), tags: s("g", { class: "tags", "data-testid": "tags" }) };
  // zones drawn only on GPS (outdoor work parties) have no site polygon: not on this map
  for (const z of (site.zones || []).filter((zone) => zone.polygon && zone.polygon.length)) {
    const g = s("g", { class: `zone kind-${z.kind}`, "data-testid": `zone-${z.id}`, "data-zone": z.id });
    g.append(s("title", {}, `${z.name} (${t(`kind.${z.kind}`, {}, z.kind)})`));
    g.append(s("polygon", { points: points(z.polygon) }));
    const [cx, cy] = centroid(z.polygon);
    if (z.kind !== "perimeter") g.append(s("text", { x: px(cx), y: py(cy) + 7, class: "zone-label" }, z.name));
    layers.zones.append(g);
  }
  for (const a of site.areas || []) {
    for (const gr of (a.grids || []).filter((grid) => grid.polygon && grid.polygon.length)) {
      const g = s("g", { class: `grid${myGrids.has(gr.id) ? " mine" : ""}`, "data-testid": `grid-${gr.id}`, "data-grid": gr.id,
        tabindex: "0", role: "button" });
      g.append(s("title", {}, t("map.gridTitle", { name: gr.name, officer: gr.officer || "-", expected: gr.expected_headcount ?? "?" })));
      g.append(s("polygon", { points: points(gr.polygon) }));
      const [cx, cy] = centroid(gr.polygon);
      g.append(s("text", { x: px(cx), y: py(cy), class: "grid-label" }, gr.id));
      g.addEventListener("click", () => openGrid(gr.id));
      g.addEventListener("keydown", (ev) => {
        if (ev.key === "Enter" || ev.key === " ") {
          ev.preventDefault();
          ev.stopPropagation();
          openGrid(gr.id);
        }
      });
      layers.grids.append(g);
    }
  }
  for (const d of site.doors || []) {
    if (!d.position) continue;
    const g = s("g", { class: "door", "data-testid": `door-${d.id}` });
    g.append(s("title", {}, t("map.door", { name: d.name || d.id })));
    g.append(s("rect", { x: px(d.position[0]) - 1.6, y: py(d.position[1]) - 1.6, width: 3.2, height: 3.2 }));
    layers.doors.append(g);
  }
  for (const d of site.devices || []) {
    const place = devicePlace(d, site.zones || []);
    if (!place) continue;
    const g = s("g", { class: `device fam-${d.family}`, "data-testid": `device-${d.id}`, "data-device": d.id,
      "data-family": d.family, "data-placed": d.position ? "position" : "zone" });
    g.append(s("title", {}));
    const [x, y] = [px(place[0]), py(place[1])];
    g.append(d.family === "camera"
      ? s("polygon", { points: `${x - 2},${y + 1.6} ${x + 2},${y + 1.6} ${x},${y - 2}` })
      : s("circle", { cx: x, cy: y, r: 1.3 }));
    layers.devices.append(g);
  }
  svg.append(layers.zones, layers.grids, layers.doors, layers.devices, layers.tags);
  document.getElementById("map").replaceChildren(svg);
  paintHealth();
  drawLegend();
}

function drawLegend() {
  if (!siteModel) return;
  const kinds = [...new Set((siteModel.zones || []).map((z) => z.kind))];
  const key = (cls, text) => h("span", { class: `key ${cls}` }, text);
  document.getElementById("legend").replaceChildren(
    ...kinds.map((k) => key(`kind-${k}`, t(`kind.${k}`, {}, k.replace("_", " ")))),
    key("tag-key", t("legend.tag")),
    key("alarm-key", t("legend.alarm")),
    ...["online", "offline", "lowbat", "maint", "unknown"].map((hc) => key(`dev-key health-${hc}`, t(`devhealth.${hc}`))));
}

/** Re-read GET /devices and colour every drawn device by its health. */
export async function refreshDevices() {
  try {
    const data = await api("/devices");
    health = new Map((data.items || []).map((d) => [d.id, d]));
  } catch (err) {
    if (err.status === 401) return;
  }
  paintHealth();
}

function paintHealth() {
  for (const g of layers.devices?.children || []) {
    const item = health.get(g.dataset.device);
    const hc = healthOf(item);
    for (const c of [...g.classList]) if (c.startsWith("health-")) g.classList.remove(c);
    g.classList.add(`health-${hc}`);
    g.dataset.health = hc;
    const title = g.querySelector("title");
    if (title) title.textContent = `${g.dataset.device} (${t(`family.${g.dataset.family}`, {}, g.dataset.family)}) · ${t(`devhealth.${hc}`)}`;
  }
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

// -- grid panel: headcount and roll call -------------------------------------------------------

function gridInfo(id) {
  for (const a of siteModel?.areas || []) for (const g of a.grids || []) if (g.id === id) return { ...g, area: a };
  return null;
}

/** Show a grid's headcount (GET /grids/{id}/headcount) under the map. */
export async function openGrid(id) {
  panel = { grid: id, headcount: null, error: "", rollcall: null, busy: false };
  for (const g of layers.grids?.children || []) g.classList.toggle("selected", g.dataset.grid === id);
  renderPanel();
  try {
    const data = await api(`/grids/${encodeURIComponent(id)}/headcount`);
    if (panel.grid === id) panel.headcount = data;
  } catch (err) {
    if (panel.grid === id) panel.error = t("grid.hcError", { status: err.status ?? "", msg: err.message });
  }
  if (panel.grid === id) renderPanel();
}

function closeGrid() {
  panel = { grid: null, headcount: null, error: "", rollcall: null, busy: false };
  for (const g of layers.grids?.children || []) g.classList.remove("selected");
  renderPanel();
}

/** POST /grids/{id}/rollcall and show its answer, or the 504 (edge did not answer) inline. */
async function rollcall(id) {
  panel.busy = true;
  panel.rollcall = null;
  renderPanel();
  try {
    const data = await api(`/grids/${encodeURIComponent(id)}/rollcall`, { method: "POST" });
    if (panel.grid !== id) return;
    panel.rollcall = { ok: data.ok !== false, data };
    // a successful roll call is now the grid's headcount
    try {
      panel.headcount = await api(`/grids/${encodeURIComponent(id)}/headcount`);
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;
    }
  } catch (err) {
    if (panel.grid !== id) return;
    panel.rollcall = { ok: false, status: err.status, msg: err.status === 504 ? t("grid.rc504", { msg: err.message }) : t("grid.rcError", { status: err.status ?? "", msg: err.message }) };
  }
  panel.busy = false;
  renderPanel();
}

function renderPanel() {
  const el = document.getElementById("grid-panel");
  if (!panel.grid) {
    el.hidden = true;
    el.replaceChildren();
    return;
  }
  el.hidden = false;
  const info = gridInfo(panel.grid);
  const hc = panel.headcount;
  const body = [];
  if (panel.error) body.push(h("p", { class: "error", role: "alert" }, panel.error));
  else if (!hc) body.push(h("p", { class: "empty" }, t("grid.loading")));
  else {
    const short = hc.present < hc.expected;
    body.push(h("p", { class: `headcount${short ? " short" : ""}`, dataset: { testid: "headcount", present: hc.present, expected: hc.expected } },
      h("strong", {}, `${hc.present} / ${hc.expected}`), " ", t("grid.present")),
    h("p", { class: "meta" }, t(`grid.source.${hc.source}`, { when: fmtTime(hc.ts) }, hc.source)),
    h("p", { class: "meta", dataset: { testid: "headcount-missing" } },
      hc.missing?.length ? t("grid.missing", { n: hc.missing.length, ids: hc.missing.slice(0, 30).join(", ") + (hc.missing.length > 30 ? " …" : "") }) : t("grid.noneMissing")));
  }
  const rc = panel.rollcall;
  el.replaceChildren(
    h("header", { class: "grid-head" },
      h("h3", { dataset: { testid: "grid-panel-title" } }, info ? `${info.id} · ${info.name}` : panel.grid),
      h("button", { type: "button", class: "link", dataset: { testid: "grid-panel-close" }, "aria-label": t("grid.close"), onclick: closeGrid }, "✕")),
    info ? h("p", { class: "meta" }, t("grid.who", { area: info.area.name || info.area.id, officer: info.officer || "-" })) : null,
    ...body,
    h("div", { class: "row" },
      h("button", { type: "button", dataset: { testid: "btn-rollcall" }, disabled: panel.busy, onclick: () => rollcall(panel.grid) },
        panel.busy ? t("grid.rcBusy") : t("grid.rollcall"))),
    rc ? h("p", { class: rc.ok ? "ok" : "error", role: "status", dataset: { testid: "rollcall-result", status: rc.status || (rc.ok ? 200 : "") } },
      rc.ok ? t("grid.rcOk", { edge: rc.data.edge, present: rollcallPresent(rc.data.result) }) : rc.msg || t("grid.rcFailed")) : null);
}

function rollcallPresent(result) {
  const p = result?.present;
  return Array.isArray(p) ? p.length : (p ?? "?");
}

// -- live tags ---------------------------------------------------------------------------------

/** Poll GET /positions every 2 s and draw one dot per tag (at most MAX_TAGS). */
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

/** Every k-th of `items` so that at most `max` remain (an even thinning, stable between polls). */
export function thin(items, max = MAX_TAGS) {
  if (items.length <= max) return items;
  const step = items.length / max;
  const out = [];
  for (let i = 0; i < max; i++) out.push(items[Math.floor(i * step)]);
  return out;
}

export function drawTags(list) {
  if (!layers.tags) return;
  const items = (Array.isArray(list) ? list : list?.items || []).filter((p) => p.x != null && p.y != null);
  const shown = thin(items);
  tagsShown = { shown: shown.length, total: items.length };
  layers.tags.replaceChildren(...shown.map((p) => {
    const c = s("circle", { cx: px(p.x), cy: py(p.y), r: 1.1, class: String(p.person || "").startsWith("S-") ? "tag staff" : "tag", "data-testid": "tag-dot", "data-tag": p.tag });
    c.append(s("title", {}, `${p.tag}${p.person ? ` · ${p.person}` : ""}${p.grid ? ` · ${p.grid}` : ""}`));
    return c;
  }));
  tagsNote();
}

function tagsNote() {
  const note = document.getElementById("tags-note");
  note.hidden = tagsShown.total <= tagsShown.shown;
  note.textContent = note.hidden ? "" : t("map.thinned", { shown: tagsShown.shown.toLocaleString(), total: tagsShown.total.toLocaleString() });
}

/** Redraw the texts after a language change. */
export function relabel() {
  if (!siteModel) return;
  drawLegend();
  paintHealth();
  renderPanel();
  tagsNote();
  for (const g of layers.grids?.children || []) {
    const info = gridInfo(g.dataset.grid);
    if (info) g.querySelector("title").textContent = t("map.gridTitle", { name: info.name, officer: info.officer || "-", expected: info.expected_headcount ?? "?" });
  }
  for (const g of layers.zones?.children || []) {
    const z = (siteModel.zones || []).find((zone) => zone.id === g.dataset.zone);
    if (z) g.querySelector("title").textContent = `${z.name} (${t(`kind.${z.kind}`, {}, z.kind)})`;
  }
  document.querySelector("[data-testid=map-svg]")?.setAttribute("aria-label", t("map.svgAria", { site: siteModel.site?.name || "" }));
}
