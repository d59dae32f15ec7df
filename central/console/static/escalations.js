// The escalations panel (supervisors): every SSE `escalation` notice, newest first, kept in a list.
import { t } from "./i18n.js";
import { h, levelBadge, fmtTime } from "./util.js";

const MAX = 200;
const items = []; // newest first
let onPick = () => {};
let titleOf = (id) => id;

export function init({ pick, title }) {
  onPick = pick;
  titleOf = title;
}

export function clear() {
  items.length = 0;
  render();
}

/** One notice: {kind: "unacknowledged" | "steps_skipped", id, level, to, by, skipped, title, ts}. */
export function add(notice) {
  const id = notice.alert_id || notice.id;
  const key = `${id}|${notice.kind}|${notice.to}|${notice.ts}`;
  if (items.some((e) => e.key === key)) return;
  items.unshift({ ...notice, id, key });
  items.length = Math.min(items.length, MAX);
  render();
}

/** After a (re)load: alerts already escalated, so the panel is not empty after a page reload. */
export function seed(alerts) {
  for (const a of alerts) {
    if (!a.escalated_to) continue;
    add({ kind: "unacknowledged", id: a.id, level: a.level, to: a.escalated_to, title: a.title, ts: a.escalated_at || a.last_change });
  }
  items.sort((x, y) => String(y.ts || "").localeCompare(String(x.ts || "")));
  render();
}

export function render() {
  const list = document.getElementById("escalation-list");
  list.replaceChildren(...items.map((e) => h("li", {
    class: `esc-item kind-${e.kind}`,
    dataset: { testid: "escalation-item", id: e.id, kind: e.kind },
    tabindex: "0",
    onclick: () => onPick(e.id),
    onkeydown: (ev) => { if (ev.key === "Enter") onPick(e.id); },
  },
  e.level ? levelBadge(e.level) : null, " ",
  h("time", {}, fmtTime(e.ts)), " ",
  h("strong", {}, titleOf(e.id) || e.title || e.rule || e.id), " ",
  h("span", { class: "esc-what" }, e.kind === "steps_skipped"
    ? t("esc.skipped", { by: e.by || "", n: (e.skipped || []).length, to: e.to || "" })
    : t("esc.unacked", { to: e.to || "" })))));
  document.getElementById("escalation-empty").hidden = items.length > 0;
}
