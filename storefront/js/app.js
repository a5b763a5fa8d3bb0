// The router: hash routes (a static server needs no fallback rule), one view at a time,
// focus moved to the new page's main region so keyboard and screen-reader users follow along.
import * as cart from "./cart.js";
import * as session from "./session.js";
import { flash, go, showAlert, showError, takeFlash } from "./ui.js";
import * as views from "./views.js";

const ROUTES = {
  "": views.catalog,
  product: views.product,
  cart: views.cartPage,
  signin: views.signIn,
  register: views.register,
  checkout: views.checkout,
  orders: views.orders,
};

let generation = 0; // a view still loading when the route changes must not draw

function parse() {
  const [path, query = ""] = location.hash.replace(/^#\/?/, "").split("?");
  const [name = "", ...rest] = path.split("/").map(decodeURIComponent);
  return { name, rest, query: new URLSearchParams(query) };
}

async function render() {
  const mine = ++generation;
  const route = parse();
  const view = ROUTES[route.name] || views.notFound;
  const main = document.getElementById("main");
  const message = takeFlash();
  showAlert(message ? message.message : "", message?.kind);
  let first = true;
  const context = {
    ...route,
    alive: () => mine === generation,
    draw(...nodes) {
      if (mine !== generation) return;
      main.replaceChildren(...nodes.flat(Infinity).filter((node) => node !== null && node !== undefined && node !== false));
      const heading = main.querySelector("h1");
      document.title = heading ? `${heading.textContent} · Commerce` : "Commerce";
      if (first) {
        // A new page: start at its top, with focus on it (a redraw while polling keeps both).
        first = false;
        window.scrollTo(0, 0);
        main.focus({ preventScroll: true });
      }
    },
  };
  try {
    await view(context);
  } catch (error) {
    if (mine !== generation) return;
    if (error.status === 401) {
      flash(error.sessionEnded ? "Your session has ended. Please sign in again." : "Please sign in to continue.");
      go(`#/signin?next=${encodeURIComponent(location.hash)}`);
      return;
    }
    showError(error);
  }
}

function updateNav() {
  const user = session.currentUser();
  for (const element of document.querySelectorAll("[data-when]")) {
    element.hidden = (element.dataset.when === "signed-in") !== Boolean(user);
  }
  document.getElementById("who").textContent = user ? user.email : "";
  const items = cart.count();
  document.getElementById("nav-cart").textContent = items ? `Cart (${items})` : "Cart";
}

document.getElementById("sign-out").addEventListener("click", async () => {
  try {
    await session.signOut();
    flash("You are signed out.");
    go("#/");
  } catch (error) {
    showError(error);
  }
});

session.onChange(updateNav);
window.addEventListener("cart-changed", updateNav);
window.addEventListener("hashchange", render);

updateNav();
await session.resume();
updateNav();
render();
document.body.dataset.ready = "true"; // the browser tests wait for this
