// Talks to central's API: bearer token in sessionStorage, JSON in and out, errors as ApiError.
export const API = "/api/v1";
const TOKEN_KEY = "gridwatch.token";

export class ApiError extends Error {
  constructor(status, detail) {
    super(typeof detail === "string" ? detail : JSON.stringify(detail));
    this.status = status;
    this.detail = detail;
  }
}

let onUnauthorized = () => {};

/** Called with a message whenever the API answers 401 (expired or revoked token). */
export function setUnauthorizedHandler(fn) {
  onUnauthorized = fn;
}

export function getToken() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function clearToken() {
  sessionStorage.removeItem(TOKEN_KEY);
}

/** Exchange user name and password for a token (OAuth2 password form). */
export async function login(username, password) {
  const body = new URLSearchParams({ username, password, grant_type: "password" });
  const resp = await fetch(`${API}/auth/token`, {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body,
  });
  const data = await readBody(resp);
  if (!resp.ok) throw new ApiError(resp.status, detailOf(data, resp));
  sessionStorage.setItem(TOKEN_KEY, data.access_token);
  return data;
}

/** GET (or POST with `body`) a JSON route under /api/v1. */
export async function api(path, { method = "GET", body, signal } = {}) {
  const headers = { Accept: "application/json", Authorization: `Bearer ${getToken() || ""}` };
  const init = { method, headers, signal };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const resp = await fetch(API + path, init);
  const data = await readBody(resp);
  if (resp.status === 401) {
    clearToken();
    onUnauthorized("Your session has ended: sign in again.");
    throw new ApiError(401, detailOf(data, resp));
  }
  if (!resp.ok) throw new ApiError(resp.status, detailOf(data, resp));
  return data;
}

/** A URL for EventSource / <img>, which cannot send headers: the token rides in the query. */
export function authUrl(path) {
  const sep = path.includes("?") ? "&" : "?";
  return `${API}${path}${sep}access_token=${encodeURIComponent(getToken() || "")}`;
}

async function readBody(resp) {
  const text = await resp.text();
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

function detailOf(data, resp) {
  if (data && typeof data === "object" && "detail" in data) {
    const d = data.detail;
    // FastAPI validation errors are a list of {loc, msg}
    if (Array.isArray(d)) return d.map((e) => `${(e.loc || []).slice(1).join(".")}: ${e.msg}`).join("; ");
    return typeof d === "string" ? d : JSON.stringify(d);
  }
  return typeof data === "string" && data ? data : `${resp.status} ${resp.statusText}`;
}
