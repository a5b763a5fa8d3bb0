// Page-wide messages and navigation, shared by the router and the views.
import { ApiError, describe } from "./api.js";

export function showAlert(message, kind = "error") {
  const alert = document.getElementById("alert");
  alert.textContent = message;
  alert.className = kind === "error" ? "alert" : "alert info";
  alert.hidden = !message;
}

export function showError(error) {
  if (!(error instanceof ApiError)) console.error(error); // a bug of the page: keep its trace
  showAlert(describe(error));
}

/** Navigate; the same hash again draws the page again. */
export function go(hash) {
  if (location.hash === hash) window.dispatchEvent(new HashChangeEvent("hashchange"));
  else location.hash = hash;
}

let flashed = null;

/** A message for the next page drawn (a navigation clears the current one). */
export function flash(message, kind = "info") {
  flashed = { message, kind };
}

export function takeFlash() {
  const message = flashed;
  flashed = null;
  return message;
}
