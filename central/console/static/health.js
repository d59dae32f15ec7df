// The health tab: edges and devices from GET /edges and GET /devices.
import { api } from "./api.js";
import { t } from "./i18n.js";
import { h, fmtTime, ago } from "./util.js";

const PREFERRED = ["id", "site", "edge", "family", "zone", "online", "state", "last_seen", "battery", "dead_letters", "outbox", "version", "uptime_s"];

function items(data) {
  return Array.isArray(data) ? data : data?.items || [];
}

function cell(key, value) {
  if (key === "online") {
    if (value === null || value === undefined) return h("td", { class: "unknown" }, t("health.unknown"));
    return h("td", { class: value ? "ok" : "bad" }, value ? t("health.online") : t("health.offline"));
  }
  if (key === "last_seen" || key === "ts") return h("td", { title: value || "" }, value ? `${fmtTime(value)} (${ago(value)})` : t("health.never"));
  if (key === "battery" && typeof value === "number") {
    const pct = value <= 1 ? Math.round(value * 100) : Math.round(value);
    return h("td", { class: pct < 20 ? "bad" : "" }, `${pct < 20 ? "⚠ " : ""}${pct}%`);
  }
  if (key === "dead_letters") return h("td", { class: value ? "bad" : "" }, String(value ?? 0));
  if (value && typeof value === "object") return h("td", {}, Object.entries(value).map(([k, v]) => `${k} ${v}`).join(", "));
  return h("td", {}, value === null || value === undefined ? "" : String(value));
}

function table(rows, testid) {
  if (!rows.length) return h("p", { class: "empty" }, t("health.none"));
  const keys = [...new Set(rows.flatMap((r) => Object.keys(r)))]
    .sort((a, b) => (PREFERRED.indexOf(a) + 1 || 99) - (PREFERRED.indexOf(b) + 1 || 99));
  return h("table", { class: "health", dataset: { testid } },
    h("thead", {}, h("tr", {}, keys.map((k) => h("th", {}, t(`col.${k}`, {}, k.replace(/_/g, " ")))))),
    h("tbody", {}, rows.map((r) => h("tr", { class: r.online === false ? "offline" : "", dataset: { id: r.id || "" } }, keys.map((k) => cell(k, r[k]))))));
}

export async function refresh() {
  const [edges, devices] = await Promise.allSettled([api("/edges"), api("/devices")]);
  const put = (id, res, testid) => document.getElementById(id).replaceChildren(res.status === "fulfilled"
    ? table(items(res.value), testid)
    : h("p", { class: "error" }, t("health.cannotLoad", { msg: res.reason.message })));
  put("edges", edges, "edges-table");
  put("devices", devices, "devices-table");
}
