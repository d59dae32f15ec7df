// The alarm detail panel: snapshot, transitions, history, response plan, workflow actions and,
// for alarms about a person, their telemetry (positions, vitals) around the alarm.
import { api, authUrl } from "./api.js";
import { t } from "./i18n.js";
import { h, levelBadge, wfState, wfText, fmtTime, num } from "./util.js";

const SVG = "http://www.w3.org/2000/svg";
const TELEMETRY_BEFORE_MS = 10 * 60 * 1000;
const TELEMETRY_AFTER_MS = 5 * 60 * 1000;

const OPEN = ["new", "acknowledged", "dispatched"];
// which workflow states and roles enable each action; central enforces the same rules (409/403)
const ACTIONS = {
  ack: { states: ["new"], roles: ["operator", "officer", "supervisor", "admin"] },
  dispatch: { states: ["new", "acknowledged"], roles: ["operator", "officer", "supervisor", "admin"] },
  resolve: { states: OPEN, roles: ["operator", "officer", "supervisor", "admin"] },
  close: { states: ["resolved"], roles: ["supervisor", "admin"] },
  shelve: { states: OPEN, roles: ["operator", "supervisor", "admin"] },
  comment: { states: null, roles: ["operator", "officer", "supervisor", "admin"] },
};
const RESOLUTIONS = ["real", "nuisance", "false", "test"];

export function allowed(action, alert, role) {
  const rule = ACTIONS[action];
  return (!rule.states || rule.states.includes(wfState(alert))) && (!rule.roles || rule.roles.includes(role));
}

let ctx = { site: null, me: null, onAlert: () => {} };
const checklists = new Map(); // alert id -> Set of checked step indexes
let current = null; // id shown
let loadSeq = 0;

export function init(site, me, onAlert) {
  ctx = { site, me, onAlert };
}

export function shownId() {
  return current;
}

export function clear() {
  current = null;
  document.getElementById("detail").replaceChildren(h("p", { class: "empty" }, t("detail.select")));
}

/** Fetch GET /alerts/{id} and draw it; keeps the error line and form inputs if redrawing the same alert. */
export async function show(id, { keepError = false } = {}) {
  const seq = ++loadSeq;
  const pane = document.getElementById("detail");
  let alert;
  try {
    alert = await api(`/alerts/${encodeURIComponent(id)}`);
  } catch (err) {
    if (seq !== loadSeq) return;
    pane.replaceChildren(h("p", { class: "error", role: "alert" }, t("detail.cannotLoad", { id, msg: err.message })));
    return;
  }
  if (seq !== loadSeq) return; // a newer selection won
  const sameAlert = current === id;
  const prevError = keepError && sameAlert ? pane.querySelector("[data-testid=action-error]")?.textContent : "";
  const inputs = sameAlert ? saveInputs(pane) : {};
  current = id;
  pane.replaceChildren(...render(alert).filter((part) => part !== null && part !== undefined));
  restoreInputs(pane, inputs);
  if (prevError) showError(prevError);
  telemetry(alert, seq);
}

function saveInputs(pane) {
  const out = {};
  for (const el of pane.querySelectorAll("[data-keep]")) out[el.dataset.keep] = el.value;
  return out;
}

function restoreInputs(pane, values) {
  for (const el of pane.querySelectorAll("[data-keep]")) if (el.dataset.keep in values) el.value = values[el.dataset.keep];
}

function render(a) {
  const wf = wfState(a);
  const role = ctx.me?.role;
  return [
    h("header", { class: "detail-head" },
      levelBadge(a.level),
      h("h2", { dataset: { testid: "detail-title" } }, a.title || a.rule),
      h("p", { class: "meta" },
        h("span", { class: `cond cond-${a.condition}`, dataset: { testid: "detail-condition", condition: a.condition || "" } },
          a.condition === "active" ? t("detail.condActive") : t("detail.condCleared")),
        ` · ${t("detail.workflow")} `, h("strong", { dataset: { testid: "detail-workflow", state: wf } }, wfText(wf)),
        a.escalated_to ? h("span", { class: "esc" }, ` · ${t("detail.escalatedTo", { to: a.escalated_to })}`) : null),
      h("p", { class: "meta" }, `${a.rule} · ${[a.zone, a.grid, a.area].filter(Boolean).join(" · ")} · ${t("detail.firstSeen", { when: fmtTime(a.first_seen) })}`),
      h("p", { class: "meta" }, t("detail.subject", { kind: a.subject?.kind || "", id: a.subject?.id || "", devices: (a.devices || []).join(", ") || "-" }))),
    snapshot(a),
    a.subject?.kind === "person" ? h("section", { class: "block telemetry", dataset: { testid: "telemetry" } },
      h("h3", {}, t("tel.title", { person: a.subject.id })), h("p", { class: "empty" }, t("tel.loading"))) : null,
    actions(a, role),
    plan(a),
    section(t("detail.transitions"), "transitions", (a.transitions || []).map((tr) =>
      h("li", {}, h("time", {}, fmtTime(tr.ts)), ` ${tr.condition || tr.state || ""} · ${tr.level || ""} · ${tr.title || ""}`,
        tr.suppressed ? ` (${t("detail.suppressed", { why: tr.suppressed })})` : ""))),
    section(t("detail.history"), "history", (a.history || []).map((e) =>
      h("li", {}, h("time", {}, fmtTime(e.ts || e.at)), ` ${e.actor || e.user || e.by || t("detail.system")}: `,
        h("strong", {}, e.action || e.command || e.to || e.state || ""),
        historyExtra(e)))),
    section(t("detail.evidence"), "evidence", (a.evidence?.events || []).map((e) =>
      h("li", {}, h("time", {}, fmtTime(e.ts)), ` ${e.device}: ${e.kind}`))),
  ];
}

function historyExtra(e) {
  const parts = [];
  if (e.officer) parts.push(t("hist.officer", { who: e.officer }));
  if (e.resolution) parts.push(t("hist.resolution", { what: t(`res.${e.resolution}`) }));
  if (e.until) parts.push(t("hist.until", { when: fmtTime(e.until) }));
  for (const k of ["note", "reason", "why"]) if (e[k]) parts.push(`“${e[k]}”`);
  if (e.from && e.to) parts.push(`${e.from} → ${e.to}`);
  return parts.length ? ` (${parts.join(", ")})` : "";
}

function section(title, testid, items) {
  return h("section", { class: "block" }, h("h3", {}, title),
    items.length ? h("ol", { class: "events", dataset: { testid } }, items) : h("p", { class: "empty", dataset: { testid } }, t("none")));
}

function snapshot(a) {
  if (!a.snapshot) return h("p", { class: "no-snapshot" }, t("detail.noSnapshot"));
  const img = h("img", { class: "snapshot", alt: t("detail.snapshotAlt", { title: a.title }), dataset: { testid: "snapshot" } });
  let tries = 0;
  // the JPEG travels on its own topic and may land a moment after the alert: retry briefly
  img.addEventListener("error", () => {
    if (++tries <= 10) setTimeout(() => { img.src = authUrl(`/snapshots/${a.snapshot}`) + `&try=${tries}`; }, 700);
  });
  img.src = authUrl(`/snapshots/${a.snapshot}`);
  return h("figure", { class: "snap" }, img);
}

function planSteps(a) {
  const p = a.response_plan;
  if (!p) return [];
  return Array.isArray(p) ? p : p.steps || [];
}

function steps(a) {
  return planSteps(a).map((st) => (typeof st === "string" ? st : st.step || st.text || JSON.stringify(st)));
}

function plan(a) {
  const list = steps(a);
  if (!list.length) return null;
  let done = checklists.get(a.id);
  if (!done) {
    // start from what central recorded (steps ticked at an earlier resolve)
    done = new Set(planSteps(a).flatMap((st, i) => (st && st.done ? [i] : [])));
    checklists.set(a.id, done);
  }
  const name = a.response_plan && !Array.isArray(a.response_plan) ? a.response_plan.name || a.response_plan.title : "";
  return h("section", { class: "block plan" }, h("h3", {}, name ? t("detail.planNamed", { name }) : t("detail.plan")),
    h("ol", { class: "checklist", dataset: { testid: "response-plan" } }, list.map((text, i) => h("li", {},
      h("label", {}, h("input", { type: "checkbox", checked: done.has(i), onchange: (ev) => (ev.target.checked ? done.add(i) : done.delete(i)) }), " ", text)))));
}

function actions(a, role) {
  const btn = (action, label, onclick, extra = {}) => h("button", {
    type: "button", dataset: { testid: `btn-${action}`, action }, disabled: !allowed(action, a, role), onclick, ...extra,
  }, label);
  const officers = (ctx.site?.users || []).filter((u) => u.role === "officer").map((u) => u.username);
  const gridOfficer = (ctx.site?.areas || []).flatMap((ar) => ar.grids || []).find((g) => g.id === a.grid)?.officer;
  const officerSel = h("select", { dataset: { testid: "dispatch-officer", keep: "officer" }, "aria-label": t("act.officer") },
    officers.map((u) => h("option", { value: u, selected: u === gridOfficer }, u)));
  const resSel = h("select", { dataset: { testid: "resolve-resolution", keep: "resolution" }, "aria-label": t("act.resolution") },
    RESOLUTIONS.map((v) => h("option", { value: v }, t(`res.${v}.long`))));
  const resNote = h("input", { placeholder: t("act.whatHappened"), dataset: { testid: "resolve-note", keep: "resolve-note" }, "aria-label": t("act.resolutionNote") });
  const shelveFor = h("select", { dataset: { testid: "shelve-minutes", keep: "shelve-minutes" }, "aria-label": t("act.shelveFor") },
    [[15, t("act.min", { n: 15 })], [60, t("act.hours", { n: 1 })], [240, t("act.hours", { n: 4 })], [480, t("act.hours", { n: 8 })]]
      .map(([m, l]) => h("option", { value: m }, l)));
  const shelveReason = h("input", { placeholder: t("act.why"), dataset: { testid: "shelve-reason", keep: "shelve-reason" }, "aria-label": t("act.shelveReason") });
  const comment = h("input", { placeholder: t("act.comment"), dataset: { testid: "comment-note", keep: "comment" }, "aria-label": t("act.comment") });
  const run = (action, body) => () => post(a.id, action, body());
  return h("section", { class: "block actions", dataset: { testid: "actions" } },
    h("div", { class: "row" },
      btn("ack", t("act.ack"), run("ack", () => ({}))),
      btn("close", t("act.close"), run("close", () => ({})))),
    h("div", { class: "row" }, officerSel,
      btn("dispatch", t("act.dispatch"), run("dispatch", () => ({ officer: officerSel.value })), { disabled: !allowed("dispatch", a, role) || !officers.length })),
    h("div", { class: "row" }, resSel, resNote,
      btn("resolve", t("act.resolve"), run("resolve", () => ({ resolution: resSel.value, note: resNote.value, ...planBody(a) })))),
    h("div", { class: "row" }, shelveFor, shelveReason,
      btn("shelve", t("act.shelve"), run("shelve", () => ({ until: new Date(Date.now() + Number(shelveFor.value) * 60000).toISOString(), reason: shelveReason.value })))),
    h("div", { class: "row" }, comment,
      btn("comment", t("act.commentBtn"), run("comment", () => ({ note: comment.value })))),
    h("p", { class: "error", role: "alert", dataset: { testid: "action-error" } }));
}

/** The checked response-plan steps (their text), sent with resolve when the alert has a plan. */
function planBody(a) {
  const list = steps(a);
  if (!list.length) return {};
  const done = checklists.get(a.id) || new Set();
  return { steps_done: list.filter((_, i) => done.has(i)) };
}

function showError(text) {
  const el = document.querySelector("#detail [data-testid=action-error]");
  if (el) el.textContent = text;
}

/** POST a workflow command; on success update the list and redraw, on error show it inline. */
export async function post(id, action, body) {
  showError("");
  try {
    const result = await api(`/alerts/${encodeURIComponent(id)}/${action}`, { method: "POST", body });
    if (result && result.id) ctx.onAlert(result);
    if (current === id) await show(id);
    return true;
  } catch (err) {
    if (err.status === 401) return false;
    if (current === id) showError(t("act.failed", { action: t(`act.name.${action}`), status: err.status, msg: err.message }));
    return false;
  }
}

/** `a`: acknowledge the alert if it is new; says why not otherwise. */
export function acknowledge(alert) {
  if (!alert) return;
  if (!allowed("ack", alert, ctx.me?.role)) {
    showError(ACTIONS.ack.roles.includes(ctx.me?.role)
      ? t("act.cannotAck", { state: wfText(wfState(alert)) })
      : t("act.cannotAckRole", { state: wfText(wfState(alert)), role: t(`role.${ctx.me?.role}`) }));
    return;
  }
  post(alert.id, "ack", {});
}

// -- telemetry window of a person alarm --------------------------------------------------------

/** GET /telemetry for positions and vitals of the alarm's person, first_seen −10 min … +5 min. */
async function telemetry(a, seq) {
  if (a.subject?.kind !== "person" || !a.subject.id) return;
  const first = new Date(a.first_seen).getTime();
  const q = (measurement) => new URLSearchParams({
    measurement, subject: a.subject.id, limit: "500",
    from: new Date(first - TELEMETRY_BEFORE_MS).toISOString(), to: new Date(first + TELEMETRY_AFTER_MS).toISOString(),
  });
  const [pos, vit] = await Promise.allSettled([api(`/telemetry?${q("position")}`), api(`/telemetry?${q("vitals")}`)]);
  const box = document.querySelector("#detail [data-testid=telemetry]");
  if (seq !== loadSeq || !box) return; // another alarm is shown by now
  const part = (res, draw) => (res.status === "fulfilled"
    ? draw(res.value.items || [], first)
    : h("p", { class: "error" }, t("tel.error", { msg: res.reason.message })));
  box.replaceChildren(h("h3", {}, t("tel.title", { person: a.subject.id })),
    part(vit, vitalsView), part(pos, positionsView));
}

/** One sparkline per vitals field (heart rate, temperature) with the alarm time marked. */
function vitalsView(points, first) {
  const fields = [["hr", t("tel.hr")], ["temp", t("tel.temp")]];
  const series = fields.map(([key, label]) => [key, label, points
    .filter((p) => typeof p.fields?.[key] === "number")
    .map((p) => [new Date(p.ts).getTime(), p.fields[key]])]).filter(([, , pts]) => pts.length);
  if (!series.length) return h("p", { class: "empty", dataset: { testid: "telemetry-vitals" } }, t("tel.noVitals"));
  return h("div", { class: "sparks", dataset: { testid: "telemetry-vitals" } }, series.map(([key, label, pts]) => {
    const vals = pts.map((p) => p[1]);
    return h("div", { class: "spark-row" }, h("span", { class: "spark-label" }, label),
      sparkline(pts, first),
      h("span", { class: "spark-vals" }, t("tel.range", { min: num(Math.min(...vals), 1), max: num(Math.max(...vals), 1), last: num(vals[vals.length - 1], 1) })));
  }));
}

function sparkline(pts, first) {
  const W = 160;
  const H = 30;
  const t0 = first - TELEMETRY_BEFORE_MS;
  const span = TELEMETRY_BEFORE_MS + TELEMETRY_AFTER_MS;
  const vals = pts.map((p) => p[1]);
  const lo = Math.min(...vals);
  const hi = Math.max(...vals);
  const x = (ms) => (((ms - t0) / span) * W).toFixed(1);
  const y = (v) => (hi === lo ? H / 2 : H - 2 - ((v - lo) / (hi - lo)) * (H - 4)).toFixed(1);
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("class", "spark");
  svg.setAttribute("role", "img");
  svg.dataset.testid = "sparkline";
  const mark = document.createElementNS(SVG, "line");
  for (const [k, v] of Object.entries({ x1: x(first), x2: x(first), y1: 0, y2: H, class: "spark-mark" })) mark.setAttribute(k, v);
  const line = document.createElementNS(SVG, "polyline");
  line.setAttribute("points", pts.map(([ms, v]) => `${x(ms)},${y(v)}`).join(" "));
  line.setAttribute("class", "spark-line");
  svg.append(mark, line);
  return svg;
}

/** Positions as a small table, at most 12 rows spread over the window. */
function positionsView(points) {
  const rows = points.filter((p) => p.fields && (p.fields.x !== undefined || p.fields.lat !== undefined));
  if (!rows.length) return h("p", { class: "empty", dataset: { testid: "telemetry-positions" } }, t("tel.noPositions"));
  const step = Math.max(1, Math.ceil(rows.length / 12));
  const shown = rows.filter((_, i) => i % step === 0);
  return h("table", { class: "tel-table", dataset: { testid: "telemetry-positions" } },
    h("thead", {}, h("tr", {}, h("th", {}, t("tel.time")), h("th", {}, t("tel.where")), h("th", {}, t("tel.grid")))),
    h("tbody", {}, shown.map((p) => h("tr", {},
      h("td", {}, fmtTime(p.ts)),
      h("td", {}, p.fields.x !== undefined ? `${num(p.fields.x, 1)}, ${num(p.fields.y, 1)}` : `${num(p.fields.lat, 5)}, ${num(p.fields.lon, 5)}`),
      h("td", {}, p.tags?.grid || "")))));
}
