// HTTP to the gateway: one place that turns every answer that is not a success into an
// ApiError carrying the problem+json fields, so every view can say what went wrong in words.
import config from "../config.js";

export const API_BASE = config.apiBase.replace(/\/$/, "");

export class ApiError extends Error {
  constructor(status, problem = {}, retryAfter = null) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.type = problem.type || null;
    this.title = problem.title || null;
    this.detail = problem.detail || null;
    this.errors = Array.isArray(problem.errors) ? problem.errors : [];
    this.requestId = problem.request_id || null;
    this.retryAfter = retryAfter;
  }
}

function retryAfterSeconds(response) {
  const value = response.headers.get("Retry-After");
  if (value === null) return null;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, Math.ceil(seconds));
  const date = Date.parse(value); // the other form RFC 9110 allows
  return Number.isNaN(date) ? null : Math.max(0, Math.ceil((date - Date.now()) / 1000));
}

/**
 * One request. `token` adds the bearer; `withCookie` lets the browser send and store the
 * refresh cookie (auth routes only: the cookie's path is /api/v1/auth anyway). `cache:
 * "no-cache"` revalidates a cached answer with its ETag (a 304 costs no body).
 */
export async function request(path, { method = "GET", json, form, token, headers = {}, withCookie = false, cache = "default" } = {}) {
  const init = { method, cache, headers: { Accept: "application/json", ...headers } };
  if (token) init.headers.Authorization = `Bearer ${token}`;
  if (json !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(json);
  } else if (form !== undefined) {
    init.body = new URLSearchParams(form);
  }
  init.credentials = withCookie ? "include" : "omit";
  let response;
  try {
    response = await fetch(`${API_BASE}${path}`, init);
  } catch {
    throw new ApiError(0, {
      title: "Network error",
      detail: `The shop cannot be reached at ${API_BASE}. Check your connection and try again.`,
    });
  }
  if (response.status === 204) return null;
  const text = await response.text();
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = null;
  }
  if (!response.ok) {
    throw new ApiError(response.status, body && typeof body === "object" ? body : {}, retryAfterSeconds(response));
  }
  return body;
}

function field(loc) {
  // ["body", "shipping_address", "postal_code"] -> "shipping address postal code"
  return (loc || []).filter((part) => part !== "body" && part !== "query").join(" ").replaceAll("_", " ");
}

/** What to tell a person about an error, in words. */
export function describe(error) {
  if (!(error instanceof ApiError)) return "Something went wrong in the page. Please reload and try again.";
  if (error.status === 429) {
    const wait = error.retryAfter ?? 1;
    return `Too many requests: please wait ${wait} second${wait === 1 ? "" : "s"} and try again.` +
      (error.detail ? ` (${error.detail})` : "");
  }
  let text = error.detail || error.title || `The request failed (HTTP ${error.status}).`;
  if (error.errors.length) {
    text += " " + error.errors.map((item) => `${field(item.loc) || "input"}: ${item.msg}`).join("; ") + ".";
  }
  if (error.status >= 500 && error.requestId) text += ` Reference: ${error.requestId}.`;
  return text;
}
