// Console entry point: login, first load, live stream, tabs and keyboard.
import { api, authUrl, clearToken, getToken, login, setUnauthorizedHandler } from "./api.js";
import * as alarms from "./alarms.js";
import * as detail from "./detail.js";
import * as map from "./map.js";
import * as health from "./health.js";
import { h, setTimeZone } from "./util.js";

let site = null;
let me = null;
let stream = null;
let retryTimer = null;
let retryDelay = 1000;
let running = false;

const $ = (id) => document.getElementById(id);

function showLogin(message = "") {
  stop();
  $("app").hidden = true;
  $("login").hidden = false;
  $("login-message").textContent = message;
  $("login-form").querySelector("[name=password]").value = "";
  document.title = "gridwatch console: sign in";
}

setUnauthorizedHandler((message) => showLogin(message));

$("login-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  alarms.tone.unlock(); // a user gesture: the browser now lets the alarm tone play
  const form = new FormData(ev.target);
  $("login-message").textContent = "";
  try {
    await login(form.get("username"), form.get("password"));
  } catch (err) {
    $("login-message").textContent = err.status === 401 || err.status === 400
      ? "Wrong user name or password." : `Sign-in failed: ${err.message}`;
    return;
  }
  start();
});

$("logout").addEventListener("click", () => {
  clearToken();
  showLogin("Signed out.");
});

async function start() {
  try {
    [me, site] = await Promise.all([api("/me"), api("/site")]);
  } catch (err) {
    if (err.status !== 401) showLogin(`Cannot reach central: ${err.message}`);
    return;
  }
  running = true;
  $("login").hidden = true;
  $("app").hidden = false;
  setTimeZone(site.site?.timezone);
  $("site-name").textContent = site.site?.name || site.site?.id || "";
  $("me").textContent = `${me.username} (${me.role})`;
  $("f-area").replaceChildren(h("option", { value: "" }, "all"),
    ...(site.areas || []).map((a) => h("option", { value: a.id }, a.name || a.id)));
  detail.init(site, me, (item) => alarms.upsert(item));
  map.drawSite(site);
  map.startPositions();
  connect();
  await loadAlerts();
}

function stop() {
  running = false;
  if (stream) stream.close();
  stream = null;
  clearTimeout(retryTimer);
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
}

function setStream(state, text) {
  const el = $("stream-status");
  el.dataset.state = state;
  el.textContent = text;
}

/** EventSource with our own reconnect: after a drop, re-check the token, reload the list, reconnect. */
function connect() {
  if (!running) return;
  setStream("connecting", "connecting…");
  const es = new EventSource(authUrl("/stream"));
  stream = es;
  es.addEventListener("open", () => {
    retryDelay = 1000;
    setStream("live", "● live");
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
    toast(data.kind === "steps_skipped"
      ? `${title}: resolved by ${data.by} with ${(data.skipped || []).length} plan step(s) not done; ${data.to || "supervisor"} notified`
      : `Escalated: ${title} → ${data.to || data.escalated_to || ""}`);
    if (id && detail.shownId() === id) detail.show(id, { keepError: true });
  });
  for (const kind of ["device", "edge"]) {
    es.addEventListener(kind, () => {
      if (!$("tab-health").hidden) health.refresh();
    });
  }
  es.addEventListener("error", () => {
    if (stream === es) streamLost(retryDelay);
  });
}

/** Close the stream, show "reconnecting" and try again after `delay` ms (doubling up to 10 s). */
function streamLost(delay) {
  if (!running) return;
  setStream("reconnecting", "◌ reconnecting");
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

for (const tab of document.querySelectorAll("[data-tab]")) {
  tab.addEventListener("click", () => {
    for (const t of document.querySelectorAll("[data-tab]")) t.setAttribute("aria-selected", String(t === tab));
    $("tab-alarms").hidden = tab.dataset.tab !== "alarms";
    $("tab-health").hidden = tab.dataset.tab !== "health";
    if (tab.dataset.tab === "health") health.refresh();
  });
}

document.addEventListener("click", () => alarms.tone.unlock());
document.addEventListener("keydown", (ev) => {
  if ($("app").hidden || ev.ctrlKey || ev.metaKey || ev.altKey) return;
  const t = ev.target;
  if (t instanceof HTMLElement && (t.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(t.tagName))) return;
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
