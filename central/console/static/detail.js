// The alarm detail panel: snapshot, transitions, history, response plan and workflow actions.
import { api, authUrl } from "./api.js";
import { h, levelBadge, wfState, fmtTime } from "./util.js";

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
const RESOLUTIONS = [
  ["real", "real: a genuine event"],
  ["nuisance", "nuisance: real but benign (animal, wind)"],
  ["false", "false: equipment fault"],
  ["test", "test"],
];

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
  document.getElementById("detail").replaceChildren(h("p", { class: "empty" }, "Select an alarm (click, or ArrowUp / ArrowDown)."));
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
    pane.replaceChildren(h("p", { class: "error", role: "alert" }, `Cannot load alarm ${id}: ${err.message}`));
    return;
  }
  if (seq !== loadSeq) return; // a newer selection won
  const sameAlert = current === id;
  const prevError = keepError && sameAlert ? pane.querySelector("[data-testid=action-error]")?.textContent : "";
  const inputs = sameAlert ? saveInputs(pane) : {};
  current = id;
  pane.replaceChildren(...render(alert));
  restoreInputs(pane, inputs);
  if (prevError) showError(prevError);
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
        h("span", { class: `cond cond-${a.condition}`, dataset: { testid: "detail-condition" } }, a.condition === "active" ? "● condition active" : "○ condition cleared"),
        " · workflow ", h("strong", { dataset: { testid: "detail-workflow" } }, wf),
        a.escalated_to ? h("span", { class: "esc" }, ` · escalated to ${a.escalated_to}`) : null),
      h("p", { class: "meta" }, `${a.rule} · ${[a.zone, a.grid, a.area].filter(Boolean).join(" · ")} · first seen ${fmtTime(a.first_seen)}`),
      h("p", { class: "meta" }, `subject ${a.subject?.kind || ""} ${a.subject?.id || ""} · devices ${(a.devices || []).join(", ") || "-"}`)),
    snapshot(a),
    actions(a, role),
    plan(a),
    section("Transitions (from the edge)", "transitions", (a.transitions || []).map((t) =>
      h("li", {}, h("time", {}, fmtTime(t.ts)), ` ${t.condition || t.state || ""} · ${t.level || ""} · ${t.title || ""}`,
        t.suppressed ? ` (suppressed: ${t.suppressed})` : ""))),
    section("Workflow history", "history", (a.history || []).map((e) =>
      h("li", {}, h("time", {}, fmtTime(e.ts || e.at)), ` ${e.actor || e.user || e.by || "system"}: `,
        h("strong", {}, e.action || e.command || e.to || e.state || ""),
        historyExtra(e)))),
    section("Evidence: device events around the alarm", "evidence", (a.evidence?.events || []).map((e) =>
      h("li", {}, h("time", {}, fmtTime(e.ts)), ` ${e.device}: ${e.kind}`))),
  ];
}

function historyExtra(e) {
  const parts = [];
  if (e.officer) parts.push(`officer ${e.officer}`);
  if (e.resolution) parts.push(`resolution ${e.resolution}`);
  if (e.until) parts.push(`until ${fmtTime(e.until)}`);
  for (const k of ["note", "reason", "why"]) if (e[k]) parts.push(`“${e[k]}”`);
  if (e.from && e.to) parts.push(`${e.from} → ${e.to}`);
  return parts.length ? ` (${parts.join(", ")})` : "";
}

function section(title, testid, items) {
  return h("section", { class: "block" }, h("h3", {}, title),
    items.length ? h("ol", { class: "events", dataset: { testid } }, items) : h("p", { class: "empty", dataset: { testid } }, "none"));
}

function snapshot(a) {
  if (!a.snapshot) return h("p", { class: "no-snapshot" }, "No camera snapshot for this alarm.");
  const img = h("img", { class: "snapshot", alt: `camera snapshot for ${a.title}`, dataset: { testid: "snapshot" } });
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
  return h("section", { class: "block plan" }, h("h3", {}, `Response plan${name ? `: ${name}` : ""}`),
    h("ol", { class: "checklist", dataset: { testid: "response-plan" } }, list.map((text, i) => h("li", {},
      h("label", {}, h("input", { type: "checkbox", checked: done.has(i), onchange: (ev) => (ev.target.checked ? done.add(i) : done.delete(i)) }), " ", text)))));
}

function actions(a, role) {
  const btn = (action, label, onclick, extra = {}) => h("button", {
    type: "button", dataset: { testid: `btn-${action}`, action }, disabled: !allowed(action, a, role), onclick, ...extra,
  }, label);
  const officers = (ctx.site?.users || []).filter((u) => u.role === "officer").map((u) => u.username);
  const gridOfficer = (ctx.site?.areas || []).flatMap((ar) => ar.grids || []).find((g) => g.id === a.grid)?.officer;
  const officerSel = h("select", { dataset: { testid: "dispatch-officer", keep: "officer" }, "aria-label": "officer" },
    officers.map((u) => h("option", { value: u, selected: u === gridOfficer }, u)));
  const resSel = h("select", { dataset: { testid: "resolve-resolution", keep: "resolution" }, "aria-label": "resolution" },
    RESOLUTIONS.map(([v, label]) => h("option", { value: v }, label)));
  const resNote = h("input", { placeholder: "what happened", dataset: { testid: "resolve-note", keep: "resolve-note" }, "aria-label": "resolution note" });
  const shelveFor = h("select", { dataset: { testid: "shelve-minutes", keep: "shelve-minutes" }, "aria-label": "shelve for" },
    [[15, "15 min"], [60, "1 hour"], [240, "4 hours"], [480, "8 hours"]].map(([m, l]) => h("option", { value: m }, l)));
  const shelveReason = h("input", { placeholder: "why", dataset: { testid: "shelve-reason", keep: "shelve-reason" }, "aria-label": "shelve reason" });
  const comment = h("input", { placeholder: "comment", dataset: { testid: "comment-note", keep: "comment" }, "aria-label": "comment" });
  const run = (action, body) => () => post(a.id, action, body());
  return h("section", { class: "block actions", dataset: { testid: "actions" } },
    h("div", { class: "row" },
      btn("ack", "Acknowledge (a)", run("ack", () => ({}))),
      btn("close", "Close", run("close", () => ({})))),
    h("div", { class: "row" }, officerSel,
      btn("dispatch", "Dispatch", run("dispatch", () => ({ officer: officerSel.value })), { disabled: !allowed("dispatch", a, role) || !officers.length })),
    h("div", { class: "row" }, resSel, resNote,
      btn("resolve", "Resolve", run("resolve", () => ({ resolution: resSel.value, note: resNote.value, ...planBody(a) })))),
    h("div", { class: "row" }, shelveFor, shelveReason,
      btn("shelve", "Shelve", run("shelve", () => ({ until: new Date(Date.now() + Number(shelveFor.value) * 60000).toISOString(), reason: shelveReason.value })))),
    h("div", { class: "row" }, comment,
      btn("comment", "Comment", run("comment", () => ({ note: comment.value })))),
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
    if (current === id) showError(`${action} failed (${err.status}): ${err.message}`);
    return false;
  }
}

/** `a`: acknowledge the alert if it is new; says why not otherwise. */
export function acknowledge(alert) {
  if (!alert) return;
  if (!allowed("ack", alert, ctx.me?.role)) {
    showError(`cannot acknowledge: workflow is ${wfState(alert)}${ACTIONS.ack.roles.includes(ctx.me?.role) ? "" : ` and role ${ctx.me?.role} may not`}`);
    return;
  }
  post(alert.id, "ack", {});
}
