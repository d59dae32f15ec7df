// Console entry point: login, language, role-aware views, first load, live stream, tabs and keyboard.
import { api, authUrl, clearToken, getToken, login, setUnauthorizedHandler } from "./api.js";
import * as alarms from "./alarms.js";
import * as detail from "./detail.js";
import * as escalations from "./escalations.js";
import * as health from "./health.js";
import * as i18n from "./i18n.js";
import * as kpi from "./kpi.js";
import * as map from "./map.js";
import { h, setTimeZone } from "./util.js";

const { t } = i18n;
// what each role sees besides the alarm list (central enforces the same: 403, and officers' grids)
const ESCALATION_ROLES = ["supervisor", "admin"];
const KPI_ROLES = ["supervisor", "admin"];

let site = null;
let me = null;
let stream = null;
let streamState = "connecting";
let retryTimer = null;
let retryDelay = 1000;
let running = false;
let loginMessage = { key: "", vars: {}, raw: "" };
let devicesTimer = null;

const $ = (id) => document.getElementById(id);

/** The login message, kept as a key so a language switch re-translates it. */
function setLoginMessage(key, vars = {}) {
  loginMessage = { key, vars };
  $("login-message").textContent = key ? t(key, vars) : "";
}

function showLogin(key = "", vars = {}) {
  stop();
  $("app").hidden = true;
  $("login").hidden = false;
  setLoginMessage(key, vars);
  $("login-form").querySelector("[name=password]").value = "";
  document.title = t("title.signin");
}

setUnauthorizedHandler(() => showLogin("login.sessionEnded"));

$("login-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  alarms.tone.unlock(); // a user gesture: the browser now lets the alarm tone play
  const form = new FormData(ev.target);
  setLoginMessage("");
  try {
    await login(form.get("username"), form.get("password"));
  } catch (err) {
    if (err.status === 401 || err.status === 400) setLoginMessage("login.wrong");
    else setLoginMessage("login.failed", { msg: err.message });
    return;
  }
  start();
});

$("logout").addEventListener("click", () => {
  clearToken();
  showLogin("login.signedOut");
});

function roleViews() {
  const role = me?.role;
  document.querySelector("[data-tab=kpi]").hidden = !KPI_ROLES.includes(role);
  $("escalations").hidden = !ESCALATION_ROLES.includes(role);
  document.body.dataset.role = role || "";
}

function renderMe() {
  if (!me) return;
  $("me").textContent = t("me", { user: me.username, role: t(`role.${me.role}`, {}, me.role) });
  $("me").title = me.grids?.length ? t("me.grids", { grids: me.grids.join(", ") }) : "";
}

async function start() {
  try {
    [me, site] = await Promise.all([api("/me"), api("/site")]);
  } catch (err) {
    if (err.status !== 401) showLogin("login.unreachable", { msg: err.message });
    return;
  }
  running = true;
  $("login").hidden = true;
  $("app").hidden = false;
  setTimeZone(site.site?.timezone);
  $("site-name").textContent = site.site?.name || site.site?.id || "";
  renderMe();
  fillAreas();
  roleViews();
  alarms.tone.showMute();
  escalations.clear();
  kpi.forget();
  detail.init(site, me, (item) => alarms.upsert(item));
  map.drawSite(site, me);
  map.startPositions();
  map.refreshDevices();
  clearInterval(devicesTimer);
  devicesTimer = setInterval(() => map.refreshDevices(), 30000);
  // engineers look after equipment: their console opens on the health board
  showTab(me.role === "engineer" ? "health" : "alarms");
  connect();
  await loadAlerts();
}

function fillAreas() {
  const sel = $("f-area");
  const value = sel.value;
  sel.replaceChildren(h("option", { value: "" }, t("filter.all")),
    ...(site?.areas || []).map((a) => h("option", { value: a.id }, a.name || a.id)));
  sel.value = value;
}

function stop() {
  running = false;
  if (stream) stream.close();
  stream = null;
  clearTimeout(retryTimer);
  clearInterval(devicesTimer);
  map.stopPositions();
  alarms.tone.update(false);
}

async function loadAlerts() {
  const items = [];
  let cursor = null;
  // a console shows the open picture: page through up to 1000 alerts, newest first
  for (let page = 0; page < 5; page++) {
    const q = new URLSearchParams({ limit: "200" });
    if (cursor) q.set("cursor", cursor);
    const data = await api(`/alerts?${q}`);
    items.push(...(data.items || []));
    cursor = data.next_cursor;
    if (!cursor) break;
  }
  alarms.replaceAll(items);
  if (ESCALATION_ROLES.includes(me?.role)) escalations.seed(items);
}

function setStream(state) {
  streamState = state;
  const el = $("stream-status");
  el.dataset.state = state;
  el.textContent = t(`stream.${state}`);
}

/** EventSource with our own reconnect: after a drop, re-check the token, reload the list, reconnect. */
function connect() {
  if (!running) return;
  setStream("connecting");
  const es = new EventSource(authUrl("/stream"));
  stream = es;
  es.addEventListener("open", () => {
    retryDelay = 1000;
    setStream("live");
  });
  es.addEventListener("alert", (ev) => {
    const item = JSON.parse(ev.data);
    alarms.upsert(item);
    if (detail.shownId() === item.id) detail.show(item.id, { keepError: true });
  });
  es.addEventListener("escalation", (ev) => {
    const data = JSON.parse(ev.data);
    const id = data.alert_id || data.id;
    const title = alarms.store.get(id)?.title || data.title || id || "";
    if (ESCALATION_ROLES.includes(me?.role)) escalations.add(data);
    toast(data.kind === "steps_skipped"
      ? t("toast.skipped", { title, by: data.by || "", n: (data.skipped || []).length, to: data.to || t("toast.supervisor") })
      : t("toast.escalated", { title, to: data.to || data.escalated_to || "" }));
    if (id && detail.shownId() === id) detail.show(id, { keepError: true });
  });
  es.addEventListener("device", () => {
    map.refreshDevices();
    if (!$("tab-health").hidden) health.refresh();
  });
  es.addEventListener("edge", () => {
    if (!$("tab-health").hidden) health.refresh();
  });
  es.addEventListener("error", () => {
    if (stream === es) streamLost(retryDelay);
  });
}

/** Close the stream, show "reconnecting" and try again after `delay` ms (doubling up to 10 s). */
function streamLost(delay) {
  if (!running) return;
  setStream("reconnecting");
  if (stream) stream.close();
  stream = null;
  clearTimeout(retryTimer);
  retryTimer = setTimeout(async () => {
    try {
      await loadAlerts(); // catches up on what happened meanwhile, and finds out whether the token still holds (401 → login)
    } catch (err) {
      if (err.status === 401) return;
    }
    connect();
  }, delay);
  retryDelay = Math.min(retryDelay * 2, 10000);
}

// the computer lost its network: the open connection may hang silently for minutes, so say so now
window.addEventListener("offline", () => streamLost(retryDelay));
window.addEventListener("online", () => {
  retryDelay = 1000;
  if (running) streamLost(0);
});

let toastTimer = null;
function toast(text) {
  const el = $("toast");
  el.textContent = text;
  el.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { el.hidden = true; }, 8000);
}

alarms.setSelectHandler((id) => detail.show(id));
alarms.onChange(() => {
  map.showAlarms([...alarms.store.values()], alarms.selected());
  const shown = detail.shownId();
  if (shown && !alarms.visible().some((a) => a.id === shown) && !alarms.store.has(shown)) detail.clear();
});
for (const id of ["f-state", "f-level", "f-area"]) $(id).addEventListener("change", () => alarms.render());

escalations.init({
  pick: (id) => {
    showTab("alarms");
    if (alarms.store.has(id)) alarms.select(id);
    else detail.show(id);
  },
  title: (id) => alarms.store.get(id)?.title,
});

function showTab(name) {
  for (const tab of document.querySelectorAll("[data-tab]")) tab.setAttribute("aria-selected", String(tab.dataset.tab === name));
  $("tab-alarms").hidden = name !== "alarms";
  $("tab-health").hidden = name !== "health";
  $("tab-kpi").hidden = name !== "kpi";
  if (name === "health") health.refresh();
  if (name === "kpi") kpi.refresh();
}

for (const tab of document.querySelectorAll("[data-tab]")) tab.addEventListener("click", () => showTab(tab.dataset.tab));
$("kpi-window").addEventListener("change", () => kpi.refresh());
$("kpi-refresh").addEventListener("click", () => kpi.refresh());

$("mute").addEventListener("click", () => {
  if (alarms.tone.muted()) alarms.tone.unmute();
  else alarms.tone.mute();
});

// -- language ---------------------------------------------------------------------------------
for (const sel of document.querySelectorAll(".lang-select")) {
  sel.addEventListener("change", () => i18n.setLang(sel.value));
}

/** Redraw everything that holds text after a language switch. */
i18n.onChange(() => {
  for (const sel of document.querySelectorAll(".lang-select")) sel.value = i18n.getLang();
  if (loginMessage.key) $("login-message").textContent = t(loginMessage.key, loginMessage.vars);
  if ($("app").hidden) {
    document.title = t("title.signin");
    return;
  }
  setStream(streamState);
  renderMe();
  fillAreas();
  alarms.render();
  escalations.render();
  map.relabel();
  kpi.render();
  if (!$("tab-health").hidden) health.refresh();
  const shown = detail.shownId();
  if (shown) detail.show(shown, { keepError: true });
  else detail.clear();
});
i18n.apply();

document.addEventListener("click", () => alarms.tone.unlock());
document.addEventListener("keydown", (ev) => {
  if ($("app").hidden || ev.ctrlKey || ev.metaKey || ev.altKey) return;
  const tgt = ev.target;
  if (tgt instanceof HTMLElement && (tgt.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(tgt.tagName))) return;
  alarms.tone.unlock();
  if (ev.key === "ArrowDown" || ev.key === "ArrowUp") {
    ev.preventDefault();
    alarms.moveSelection(ev.key === "ArrowDown" ? 1 : -1);
  } else if (ev.key === "a") {
    ev.preventDefault();
    detail.acknowledge(alarms.selected());
  }
});

if (getToken()) start();
else showLogin();
