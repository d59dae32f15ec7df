// Small shared helpers: DOM building, levels, workflow states, time formatting.
import { getLang, t } from "./i18n.js";

export const LEVELS = {
  high: { rank: 3, icon: "▲" },
  medium: { rank: 2, icon: "◆" },
  low: { rank: 1, icon: "●" },
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

/** The level as colour + icon + text ("▲ HIGH" / "▲ 高"). */
export function levelBadge(level) {
  const l = LEVELS[level] || { icon: "?" };
  const text = LEVELS[level] ? t(`level.${level}`).toUpperCase() : String(level || "").toUpperCase();
  return h("span", { class: `level level-${level}`, dataset: { testid: "level" } },
    h("span", { class: "icon", "aria-hidden": "true" }, l.icon), " ", text);
}

/** A workflow state or condition in the current language ("acknowledged" / "已确认"). */
export function wfText(state) {
  return t(`wf.${state}`);
}

/** Date/time locale of the current language. */
export function locale() {
  return getLang() === "zh" ? "zh-CN" : "en-GB";
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
  const loc = locale();
  const day = (x) => new Intl.DateTimeFormat("en-GB", { ...opts, dateStyle: "short" }).format(x);
  if (day(d) === day(new Date())) {
    return new Intl.DateTimeFormat(loc, { ...opts, timeStyle: "medium" }).format(d);
  }
  return new Intl.DateTimeFormat(loc, { ...opts, day: "2-digit", month: "short", hour: "2-digit", minute: "2-digit" }).format(d);
}

export function ago(ts) {
  const s = Math.max(0, Math.round((Date.now() - new Date(ts).getTime()) / 1000));
  if (s < 60) return t("ago.s", { n: s });
  if (s < 3600) return t("ago.m", { n: Math.floor(s / 60) });
  return t("ago.h", { n: Math.floor(s / 3600) });
}

/** "4:59" from milliseconds. */
export function mmss(ms) {
  const total = Math.max(0, Math.ceil(ms / 1000));
  return `${Math.floor(total / 60)}:${String(total % 60).padStart(2, "0")}`;
}

/** A number for a KPI cell: "–" for null, up to 3 decimals otherwise. */
export function num(value, digits = 3) {
  if (value === null || value === undefined) return "–";
  if (typeof value !== "number") return String(value);
  return Number.isInteger(value) ? String(value) : value.toFixed(digits).replace(/0+$/, "").replace(/\.$/, "");
}
