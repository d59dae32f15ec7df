// Small shared helpers: DOM building, levels, workflow states, time formatting.

export const LEVELS = {
  high: { rank: 3, icon: "▲", text: "HIGH" },
  medium: { rank: 2, icon: "◆", text: "MEDIUM" },
  low: { rank: 1, icon: "●", text: "LOW" },
};

export function levelRank(level) {
  return (LEVELS[level] || { rank: 0 }).rank;
}

/** The workflow state of an alert item, whether the API sends a string or an object. */
export function wfState(alert) {
  const wf = alert.workflow;
  if (wf && typeof wf === "object") return wf.state || "new";
  return wf || "new";
}

/** h("div", {class: "x", dataset: {testid: "y"}}, child, "text", …) */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "text") el.textContent = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function levelBadge(level) {
  const l = LEVELS[level] || { icon: "?", text: String(level || "").toUpperCase() };
  return h("span", { class: `level level-${level}`, dataset: { testid: "level" } },
    h("span", { class: "icon", "aria-hidden": "true" }, l.icon), " ", l.text);
}

let timeZone;
export function setTimeZone(tz) {
  try {
    new Intl.DateTimeFormat("en-GB", { timeZone: tz });
    timeZone = tz;
  } catch {
    timeZone = undefined;
  }
}

/** "14:03:07" today, "12 Mar 14:03" otherwise, in the site's time zone. */
export function fmtTime(ts) {
  if (!ts) return "";
  const d = new Date(ts);
  if (Number.isNaN(d.getTime())) return String(ts);
  const opts = { timeZone, hour12: false };
  const day = (x) => new Intl.DateTimeFormat("en-GB", { ...opts, dateStyle: "short" }).format(x);
  if (day(d) === day(new Date())) {
    return new Intl.DateTimeFormat("en-GB", { ...opts, timeStyle: "medium" }).format(d);
  }
  return new Intl.DateTimeFormat("en-GB", { ...opts, day: "2-digit", month: "short", hour: "2-digit", minute: "2-digit" }).format(d);
}

export function ago(ts) {
  const s = Math.max(0, Math.round((Date.now() - new Date(ts).getTime()) / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  return `${Math.floor(s / 3600)}h ago`;
}
