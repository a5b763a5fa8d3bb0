// The signed-in session. The access token lives only in this module's memory; the refresh
// token is an HttpOnly cookie the page never sees (POST /auth/token?refresh_in=cookie).
// A renewal runs shortly before the access token expires, and before any call that finds it
// (nearly) expired; renewals are serialised across tabs with the Web Locks API, so tabs never
// race one refresh cookie (the gateway's grace window would forgive a race, but a lock needs
// no forgiving). A reload starts with no token and renews from the cookie.
import config from "../config.js";
import { ApiError, request } from "./api.js";

const LOCK = "storefront-refresh";
const SIGNED_IN_FLAG = "storefront.maybeSignedIn"; // avoids a refresh call for visitors with no cookie
const EARLY_SECONDS = 60; // renew this long before expiry (or at 80% of a short lifetime)
const channel = "BroadcastChannel" in window ? new BroadcastChannel("storefront-session") : null;

let access = null; // {token, expiresAt (ms)}
let user = null; // {id, email, roles}
let timer = null;
let renewing = null; // one renewal at a time within this tab
const listeners = new Set();

export const currentUser = () => user;
export const signedIn = () => user !== null;
export function onChange(listener) {
  listeners.add(listener);
}
function changed() {
  for (const listener of listeners) listener(user);
}

function accept(answer) {
  access = { token: answer.access_token, expiresAt: Date.now() + answer.expires_in * 1000 };
  clearTimeout(timer);
  const lifetime = answer.expires_in;
  const delay = lifetime > 2 * EARLY_SECONDS ? lifetime - EARLY_SECONDS : lifetime * 0.8;
  timer = setTimeout(() => renew().catch(() => {}), delay * 1000);
}

function forget() {
  access = null;
  user = null;
  clearTimeout(timer);
  localStorage.removeItem(SIGNED_IN_FLAG);
}

async function withLock(task) {
  if (navigator.locks) return navigator.locks.request(LOCK, task);
  return task(); // without Web Locks the gateway's grace window absorbs a race
}

/** Renew the access token from the refresh cookie; signed out if the cookie is refused. */
export function renew() {
  renewing ??= withLock(async () => {
    try {
      accept(await request("/auth/refresh?refresh_in=cookie", { method: "POST", withCookie: true }));
      if (user === null) user = await request("/auth/me", { token: access.token });
      localStorage.setItem(SIGNED_IN_FLAG, "1");
    } catch (error) {
      if (error instanceof ApiError && (error.status === 401 || error.status === 403)) {
        const wasSignedIn = user !== null;
        forget();
        changed();
        if (wasSignedIn) error.sessionEnded = true;
      } else if (access) {
        // A network blip or a 429: keep the token while it lasts, try again a little later.
        clearTimeout(timer);
        timer = setTimeout(() => renew().catch(() => {}), (error.retryAfter ?? 5) * 1000);
      }
      throw error;
    } finally {
      renewing = null;
    }
    changed();
  });
  return renewing;
}

/** On page load: a session survives a reload through the refresh cookie. */
export async function resume() {
  if (!localStorage.getItem(SIGNED_IN_FLAG)) return;
  try {
    await renew();
  } catch {
    // signed out (or the API is away): the page works for a visitor either way
  }
}

export async function signIn(email, password) {
  const answer = await request("/auth/token?refresh_in=cookie", {
    method: "POST",
    form: { username: email, password },
    withCookie: true,
  });
  accept(answer);
  user = await request("/auth/me", { token: access.token });
  localStorage.setItem(SIGNED_IN_FLAG, "1");
  channel?.postMessage("signed-in");
  changed();
}

export async function register(email, password, fullName) {
  const body = { email, password };
  if (fullName) body.full_name = fullName;
  await request("/auth/register", { method: "POST", json: body });
  await signIn(email, password);
}

export async function signOut() {
  try {
    // Through call(): a token that expired while the tab slept is renewed first, so the
    // gateway still revokes the session and clears the cookie.
    if (access) await call("/auth/logout", { method: "POST", withCookie: true });
  } finally {
    forget();
    channel?.postMessage("signed-out");
    changed();
  }
}

/** A call with the bearer: renews first when the token is (nearly) expired, and once more on a 401. */
export async function call(path, options = {}) {
  if (!access) {
    throw new ApiError(401, { title: "Not signed in", detail: "Please sign in to continue." });
  }
  if (access.expiresAt - Date.now() < 10_000) await renew();
  try {
    return await request(path, { ...options, token: access.token });
  } catch (error) {
    if (error.status !== 401) throw error;
    await renew(); // the token expired on the server's clock, or was revoked
    return request(path, { ...options, token: access.token });
  }
}

channel?.addEventListener("message", (event) => {
  if (event.data === "signed-out") {
    forget();
    changed();
  } else if (event.data === "signed-in" && !user) {
    renew().catch(() => {});
  }
});

if (config.testHooks) {
  // For the browser tests only (config.js of the test server): make the server refuse the
  // token in memory, as when it expired, without waiting 15 minutes.
  window.storefrontTest = {
    spoilAccessToken() {
      if (access) access.token = "expired.token.value";
    },
  };
}
