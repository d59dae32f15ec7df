// The KPI tab (supervisors): GET /kpi — alarms per 10 min per area and operator, floods, standing
// alarms, and nuisance / false-alarm rate and probability of detection per perimeter zone.
import { api } from "./api.js";
import { t } from "./i18n.js";
import { h, fmtTime, num } from "./util.js";

let last = null; // the last answer, redrawn after a language change
let seq = 0;

export async function refresh() {
  const mine = ++seq;
  const body = document.getElementById("kpi-body");
  const windowS = document.getElementById("kpi-window").value;
  if (!last) body.replaceChildren(h("p", { class: "empty" }, t("kpi.loading")));
  try {
    const data = await api(`/kpi?window_s=${encodeURIComponent(windowS)}`);
    if (mine !== seq) return;
    last = data;
    render();
  } catch (err) {
    if (mine !== seq || err.status === 401) return;
    body.replaceChildren(h("p", { class: "error", role: "alert" }, t("kpi.error", { status: err.status ?? "", msg: err.message })));
  }
}

export function forget() {
  last = null;
  seq++;
  document.getElementById("kpi-body").replaceChildren();
}

const pct = (v) => (v === null || v === undefined ? "–" : `${num(v * 100, 1)}%`);

function card(testid, label, value, extra) {
  return h("div", { class: "kpi-card", dataset: { testid } },
    h("span", { class: "kpi-value", dataset: { testid: `${testid}-value` } }, value),
    h("span", { class: "kpi-label" }, label),
    extra ? h("span", { class: "kpi-extra" }, extra) : null);
}

function table(testid, head, rows, empty) {
  if (!rows.length) return h("p", { class: "empty", dataset: { testid } }, empty);
  return h("table", { class: "health kpi-table", dataset: { testid } },
    h("thead", {}, h("tr", {}, head.map((c) => h("th", {}, c)))),
    h("tbody", {}, rows));
}

export function render() {
  if (!last) return;
  const k = last;
  const rate = (name, r, testid) => h("tr", { dataset: { testid, key: name } },
    h("td", {}, name), h("td", { class: "n" }, num(r.alarms)), h("td", { class: "n" }, num(r.per_10min_avg)), h("td", { class: "n" }, num(r.per_10min_peak)));
  const rateHead = (first) => [first, t("kpi.alarms"), t("kpi.avg10"), t("kpi.peak10")];
  const ops = Object.entries(k.operators || {});
  const perim = Object.values(k.perimeter || {});
  document.getElementById("kpi-body").replaceChildren(
    h("p", { class: "meta", dataset: { testid: "kpi-window-text" } },
      t("kpi.windowText", { from: fmtTime(k.window?.from), to: fmtTime(k.window?.to), buckets: k.window?.buckets ?? "" })),
    h("div", { class: "kpi-cards" },
      card("kpi-site-alarms", t("kpi.siteAlarms"), num(k.site?.alarms ?? 0)),
      card("kpi-avg", t("kpi.avg10"), num(k.site?.per_10min_avg ?? 0), t("kpi.target")),
      card("kpi-peak", t("kpi.peak10"), num(k.site?.per_10min_peak ?? 0)),
      card("kpi-floods", t("kpi.floods"), num(k.floods?.count ?? 0), t("kpi.floodTime", { pct: num(k.floods?.percent_of_time ?? 0, 2) })),
      card("kpi-standing", t("kpi.standing"), num(k.standing?.count ?? 0)),
      card("kpi-chattering", t("kpi.chattering"), num((k.chattering || []).length))),
    h("section", { class: "block" }, h("h3", {}, t("kpi.perArea")),
      table("kpi-areas", rateHead(t("kpi.area")), Object.entries(k.per_area || {}).map(([n, r]) => rate(n, r, "kpi-area-row")), t("kpi.noAlarms"))),
    h("section", { class: "block" }, h("h3", {}, t("kpi.perOperator")),
      table("kpi-operators", [t("kpi.operator"), t("kpi.actions"), t("kpi.acks"), t("kpi.meanAck")],
        ops.map(([user, o]) => h("tr", { dataset: { testid: "kpi-operator-row", key: user } },
          h("td", {}, user), h("td", { class: "n" }, num(o.actions)), h("td", { class: "n" }, num(o.acks)), h("td", { class: "n" }, num(o.mean_ack_s, 1)))),
        t("kpi.noActions"))),
    h("section", { class: "block" }, h("h3", {}, t("kpi.perimeter")),
      table("kpi-perimeter", [t("kpi.zone"), t("kpi.alarms"), t("kpi.resolved"), t("res.real"), t("res.nuisance"), t("res.false"),
        t("kpi.nar"), t("kpi.far"), t("kpi.walkTests"), t("kpi.pod")],
      perim.map((z) => h("tr", { dataset: { testid: "kpi-perimeter-row", zone: z.zone } },
        h("td", {}, z.zone), h("td", { class: "n" }, num(z.alarms)), h("td", { class: "n", dataset: { testid: "kpi-resolved" } }, num(z.resolved)),
        h("td", { class: "n" }, num(z.real)), h("td", { class: "n" }, num(z.nuisance)), h("td", { class: "n" }, num(z.false)),
        h("td", { class: "n", dataset: { testid: "kpi-nar" } }, pct(z.nuisance_rate)), h("td", { class: "n", dataset: { testid: "kpi-far" } }, pct(z.false_alarm_rate)),
        h("td", { class: "n" }, `${num(z.walk_tests_detected)}/${num(z.walk_tests)}`), h("td", { class: "n", dataset: { testid: "kpi-pod" } }, pct(z.probability_of_detection)))),
      t("kpi.noPerimeter"))),
    h("section", { class: "block" }, h("h3", {}, t("kpi.floodWindows")),
      table("kpi-flood-windows", [t("kpi.start"), t("kpi.alarms")], (k.floods?.windows || []).map((f) =>
        h("tr", {}, h("td", {}, fmtTime(f.start)), h("td", { class: "n" }, num(f.alarms)))), t("kpi.noFloods"))),
    h("section", { class: "block" }, h("h3", {}, t("kpi.standingList")),
      table("kpi-standing-list", [t("kpi.alert"), t("kpi.rule"), t("kpi.zone"), t("kpi.since")], (k.standing?.alerts || []).map((a) =>
        h("tr", {}, h("td", {}, a.id), h("td", {}, a.rule), h("td", {}, a.zone || ""), h("td", {}, fmtTime(a.first_seen)))), t("kpi.noStanding"))),
  );
}
