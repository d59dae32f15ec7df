// The live alarm list: a store of alert items, sorting, filters, selection, title count, tone and mute.
import { t } from "./i18n.js";
import { h, levelBadge, levelRank, wfState, wfText, fmtTime, mmss } from "./util.js";

export const MUTE_MS = 5 * 60 * 1000;

export const store = new Map(); // id -> alert item
let selectedId = null;
let onSelect = () => {};
const listeners = new Set();

export function onChange(fn) {
  listeners.add(fn);
}

export function setSelectHandler(fn) {
  onSelect = fn;
}

export function selected() {
  return selectedId ? store.get(selectedId) || null : null;
}

export function replaceAll(items) {
  store.clear();
  for (const a of items) store.set(a.id, a);
  changed();
}

/** Insert or update one alert (an SSE `alert` event, or the answer of a workflow POST). */
export function upsert(item) {
  const old = store.get(item.id);
  // an older message arriving late must not roll the alert back
  if (old && old.last_change && item.last_change && item.last_change < old.last_change) return;
  store.set(item.id, { ...old, ...item });
  changed();
}

function changed() {
  render();
  for (const fn of listeners) fn();
}

/** Highest level first, then newest activity first. */
export function compare(a, b) {
  return levelRank(b.level) - levelRank(a.level)
    || String(b.last_change || b.first_seen || "").localeCompare(String(a.last_change || a.first_seen || ""));
}

function filters() {
  return {
    state: document.getElementById("f-state").value,
    level: document.getElementById("f-level").value,
    area: document.getElementById("f-area").value,
  };
}

function matches(a, f) {
  const wf = wfState(a);
  if (f.state === "open" && wf === "closed") return false;
  if (f.state !== "open" && f.state !== "all" && wf !== f.state) return false;
  if (f.level && a.level !== f.level) return false;
  if (f.area && a.area !== f.area) return false;
  return true;
}

export function visible() {
  const f = filters();
  return [...store.values()].filter((a) => matches(a, f)).sort(compare);
}

export function isUnacked(a) {
  return wfState(a) === "new";
}

export function render() {
  const list = document.getElementById("alarm-list");
  const items = visible();
  const rows = items.map((a) => row(a));
  list.replaceChildren(...rows);
  document.getElementById("alarm-empty").hidden = items.length > 0;
  const unacked = [...store.values()].filter(isUnacked).length;
  document.title = unacked ? `(${unacked}) ${t("title")}` : t("title");
  const badge = document.getElementById("unacked");
  badge.textContent = t("unacked", { n: unacked });
  badge.classList.toggle("has", unacked > 0);
  tone.update([...store.values()].some((a) => a.level === "high" && isUnacked(a)));
}

function row(a) {
  const wf = wfState(a);
  const flash = a.level === "high" && wf === "new";
  const el = h("li", {
    class: `alarm lv-${a.level} wf-${wf}${flash ? " flash" : ""}${a.id === selectedId ? " selected" : ""}`,
    dataset: { testid: "alarm-row", id: a.id, level: a.level, workflow: wf, condition: a.condition || "" },
    "aria-selected": a.id === selectedId ? "true" : "false",
    onclick: () => select(a.id),
  },
  levelBadge(a.level),
  h("span", { class: "title", dataset: { testid: "alarm-title" } }, a.title || a.rule),
  h("span", { class: `cond cond-${a.condition}` }, a.condition === "active" ? t("cond.active") : t("cond.cleared")),
  h("span", { class: `wf wf-${wf}`, dataset: { testid: "alarm-workflow" } }, wfText(wf)),
  h("span", { class: "where" }, [a.zone, a.grid, a.area].filter(Boolean).join(" · ")),
  h("time", { class: "when", datetime: a.last_change || a.first_seen }, fmtTime(a.first_seen)),
  a.escalated_to ? h("span", { class: "esc", title: t("esc.escalated") }, `⇧ ${a.escalated_to}`) : null,
  );
  return el;
}

export function select(id) {
  selectedId = id;
  render();
  const el = document.querySelector(`#alarm-list [data-id="${CSS.escape(id)}"]`);
  if (el) el.scrollIntoView({ block: "nearest" });
  onSelect(id);
}

/** ArrowUp / ArrowDown: move the selection within the visible list. */
export function moveSelection(delta) {
  const items = visible();
  if (!items.length) return;
  let i = items.findIndex((a) => a.id === selectedId);
  i = i < 0 ? (delta > 0 ? 0 : items.length - 1) : Math.min(items.length - 1, Math.max(0, i + delta));
  select(items[i].id);
}

/** A repeating two-tone beep while any high alarm is unacknowledged (WebAudio, no files).
 * `mute()` silences it for MUTE_MS only (a countdown shows the rest); rows and zones keep flashing. */
export const tone = {
  ctx: null,
  timer: null,
  on: false,
  mutedUntil: 0,
  countdown: null,
  muted() {
    return this.mutedUntil > Date.now();
  },
  mute(ms = MUTE_MS) {
    this.mutedUntil = Date.now() + ms;
    clearInterval(this.countdown);
    this.countdown = setInterval(() => this.showMute(), 1000);
    this.update(this.on);
  },
  unmute() {
    this.mutedUntil = 0;
    this.update(this.on);
  },
  /** The mute button and countdown; when the mute runs out the tone comes back by itself. */
  showMute() {
    const muted = this.muted();
    if (!muted && this.countdown) {
      clearInterval(this.countdown);
      this.countdown = null;
      this.mutedUntil = 0;
      this.update(this.on);
      return;
    }
    const btn = document.getElementById("mute");
    const left = document.getElementById("mute-countdown");
    btn.textContent = muted ? t("mute.unmute") : t("mute.mute", { min: Math.round(MUTE_MS / 60000) });
    btn.dataset.muted = String(muted);
    btn.setAttribute("aria-pressed", String(muted));
    left.hidden = !muted;
    left.textContent = muted ? t("mute.left", { left: mmss(this.mutedUntil - Date.now()) }) : "";
  },
  /** Must be called from a user gesture once (browsers block audio before one). */
  unlock() {
    if (!this.ctx && window.AudioContext) this.ctx = new AudioContext();
    if (this.ctx && this.ctx.state === "suspended") this.ctx.resume();
  },
  update(on) {
    this.on = on;
    const muted = this.muted();
    const ind = document.getElementById("tone");
    ind.hidden = !on;
    ind.textContent = muted ? t("tone.muted") : t("tone.on");
    document.body.dataset.tone = on ? (muted ? "muted" : "on") : "off";
    this.showMute();
    on = on && !muted;
    if (on && !this.timer) {
      this.beep();
      this.timer = setInterval(() => this.beep(), 1500);
    } else if (!on && this.timer) {
      clearInterval(this.timer);
      this.timer = null;
    }
  },
  beep() {
    const ctx = this.ctx;
    if (!ctx || ctx.state !== "running") return;
    const t = ctx.currentTime;
    for (const [i, f] of [880, 660].entries()) {
      const osc = ctx.createOscillator();
      const gain = ctx.createGain();
      osc.type = "square";
      osc.frequency.value = f;
      gain.gain.setValueAtTime(0.0001, t + i * 0.25);
      gain.gain.exponentialRampToValueAtTime(0.15, t + i * 0.25 + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, t + i * 0.25 + 0.22);
      osc.connect(gain).connect(ctx.destination);
      osc.start(t + i * 0.25);
      osc.stop(t + i * 0.25 + 0.24);
    }
  },
};
