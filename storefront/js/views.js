// The pages. Each takes the route's context ({rest, query, draw, alive}) and draws itself;
// an error it throws is shown by the router in words.
import config from "../config.js";
import * as cart from "./cart.js";
import * as session from "./session.js";
import { API_BASE, ApiError, describe, request } from "./api.js";
import { STATUS, date, h, money, reason } from "./format.js";
import { flash, go, showAlert, showError } from "./ui.js";

const PAGE_SIZE = config.pageSize || 12;
const IN_FLIGHT = new Set(["pending", "awaiting_payment", "refund_pending"]);
const CANCELLABLE = new Set(["pending", "awaiting_payment", "confirmed"]);
const UNHAPPY = new Set(["rejected", "cancelled", "refund_pending", "refunded"]);
const CARDS = [
  ["tok_visa", "Visa (test card, pays)"],
  ["tok_mastercard", "Mastercard (test card, pays)"],
  ["tok_chargeDeclined", "Declined card (test)"],
  ["tok_insufficientFunds", "Card with insufficient funds (test)"],
];
// Order page polling: the API has no server-sent events, so the page asks again, soon at
// first (the saga usually settles within a second or two) and then less and less often.
const POLL_FIRST_MS = 500;
const POLL_MAX_MS = 5000;
const POLL_FACTOR = 1.6;

function availability(product) {
  if (!product.active || product.available <= 0) return h("p", { class: "stock-out" }, "Sold out");
  return h("p", { class: "stock-in" }, `${product.available} in stock`);
}

function submitting(form, busy) {
  for (const element of form.querySelectorAll("button, input, select")) element.disabled = busy;
}

/** A form's submit handler that shows any error in words and keeps the form usable. */
function onSubmit(form, action) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    showAlert("");
    const data = new FormData(form); // before disabling: disabled fields are not submitted
    submitting(form, true);
    try {
      await action(data);
    } catch (error) {
      showError(error);
    } finally {
      submitting(form, false);
    }
  });
  return form;
}

// ---- catalog ---------------------------------------------------------------------------

const browsing = { q: "", cursors: [null], page: 0 };

export async function catalog(context) {
  const q = context.query.get("q") || "";
  if (q !== browsing.q) Object.assign(browsing, { q, cursors: [null], page: 0 });
  const params = new URLSearchParams({ limit: String(PAGE_SIZE) });
  if (q) params.set("q", q);
  const cursor = browsing.cursors[browsing.page];
  if (cursor) params.set("cursor", cursor);
  const page = await request(`/products?${params}`);

  const search = h(
    "form",
    { class: "search", role: "search" },
    h("label", { for: "q" }, "Search products", h("input", { id: "q", name: "q", type: "search", value: q })),
    h("button", { type: "submit" }, "Search"),
  );
  search.addEventListener("submit", (event) => {
    event.preventDefault();
    go(`#/?q=${encodeURIComponent(new FormData(search).get("q").trim())}`);
  });

  const items = page.items.map((product) =>
    h(
      "li",
      { class: "card" },
      h("h2", {}, h("a", { href: `#/product/${encodeURIComponent(product.sku)}` }, product.name)),
      h("p", { class: "price" }, money(product.price)),
      availability(product),
    ),
  );
  const previous = h("button", { type: "button", class: "secondary", disabled: browsing.page === 0 }, "Previous page");
  const next = h("button", { type: "button", class: "secondary", disabled: !page.next_cursor }, "Next page");
  previous.addEventListener("click", () => {
    browsing.page -= 1;
    catalog(context).catch(showError);
  });
  next.addEventListener("click", () => {
    browsing.cursors[browsing.page + 1] = page.next_cursor;
    browsing.page += 1;
    catalog(context).catch(showError);
  });
  context.draw(
    h("h1", {}, q ? `Products matching “${q}”` : "Products"),
    search,
    items.length ? h("ul", { class: "grid", "aria-label": "Products" }, items) : h("p", {}, "No product matches."),
    h("nav", { class: "pager", "aria-label": "Pages" }, previous, h("span", { class: "hint" }, `Page ${browsing.page + 1}`), next),
  );
}

// ---- product ---------------------------------------------------------------------------

export async function product(context) {
  const sku = context.rest[0];
  // The catalog may be cached for a while (Cache-Control: max-age); the page a person is
  // about to buy from revalidates, so its availability is the shop's current one.
  const item = await request(`/products/${encodeURIComponent(sku)}`, { cache: "no-cache" });
  const soldOut = !item.active || item.available <= 0;
  const form = h(
    "form",
    {},
    h("label", { for: "quantity" }, "Quantity"),
    h("input", { id: "quantity", name: "quantity", type: "number", min: "1", max: String(Math.max(1, item.available)), value: "1", required: true, disabled: soldOut }),
    h("p", {}, h("button", { type: "submit", disabled: soldOut }, soldOut ? "Sold out" : "Add to cart")),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const quantity = Number(new FormData(form).get("quantity"));
    cart.add(item, quantity);
    showAlert(`Added ${quantity} × ${item.name} to your cart.`, "info");
  });
  context.draw(
    h("p", {}, h("a", { href: "#/" }, "← All products")),
    h("h1", {}, item.name),
    h("p", { class: "price" }, money(item.price)),
    availability(item),
    (item.images || []).map((image) =>
      h("img", { class: "photo", src: new URL(image.url, API_BASE).href, alt: item.name, loading: "lazy" }),
    ),
    item.description ? h("p", {}, item.description) : null,
    h("p", { class: "hint" }, `SKU ${item.sku}`),
    form,
  );
}

// ---- cart ------------------------------------------------------------------------------

export async function cartPage(context) {
  const lines = cart.lines();
  if (!lines.length) {
    context.draw(h("h1", {}, "Your cart"), h("p", {}, "Your cart is empty. ", h("a", { href: "#/" }, "Browse the products.")));
    return;
  }
  const rows = lines.map((line) => {
    const quantity = h("input", { id: `qty-${line.sku}`, type: "number", min: "0", value: String(line.quantity) });
    quantity.addEventListener("change", () => {
      cart.setQuantity(line.sku, Math.max(0, Number(quantity.value) || 0));
      cartPage(context);
    });
    const remove = h("button", { type: "button", class: "secondary" }, "Remove", h("span", { class: "hide-small" }, ` ${line.name}`));
    remove.addEventListener("click", () => {
      cart.setQuantity(line.sku, 0);
      cartPage(context);
    });
    return h(
      "tr",
      {},
      h("td", {}, h("a", { href: `#/product/${encodeURIComponent(line.sku)}` }, line.name)),
      h("td", {}, h("label", { for: `qty-${line.sku}`, class: "hide-small" }, `Quantity of ${line.name}`), quantity),
      h("td", {}, money({ amount: line.price.amount * line.quantity, currency: line.price.currency })),
      h("td", {}, remove),
    );
  });
  context.draw(
    h("h1", {}, "Your cart"),
    h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "Product"), h("th", {}, "Quantity"), h("th", {}, "Price"), h("th", {}, h("span", { class: "hide-small" }, "Remove")))), h("tbody", {}, rows)),
    h("p", { class: "price" }, `Estimated total: ${money(cart.total())}`),
    h("p", { class: "hint" }, "Prices are confirmed by the shop when you place the order."),
    h("p", {}, h("a", { class: "button", href: "#/checkout" }, "Checkout")),
  );
}

// ---- sign in, register -----------------------------------------------------------------

function nextPage(context) {
  const next = context.query.get("next");
  return next && next.startsWith("#/") && !next.startsWith("#/signin") ? next : "#/";
}

export async function signIn(context) {
  const form = onSubmit(
    h(
      "form",
      {},
      h("label", { for: "email" }, "Email"),
      h("input", { id: "email", name: "email", type: "email", autocomplete: "username", required: true }),
      h("label", { for: "password" }, "Password"),
      h("input", { id: "password", name: "password", type: "password", autocomplete: "current-password", required: true }),
      h("p", {}, h("button", { type: "submit" }, "Sign in")),
    ),
    async (data) => {
      await session.signIn(data.get("email"), data.get("password"));
      go(nextPage(context));
    },
  );
  context.draw(
    h("h1", {}, "Sign in"),
    form,
    h("p", {}, "New here? ", h("a", { href: `#/register${location.hash.includes("?") ? "?" + location.hash.split("?")[1] : ""}` }, "Create an account")),
  );
}

export async function register(context) {
  const form = onSubmit(
    h(
      "form",
      {},
      h("label", { for: "full_name" }, "Full name (optional)"),
      h("input", { id: "full_name", name: "full_name", type: "text", autocomplete: "name" }),
      h("label", { for: "email" }, "Email"),
      h("input", { id: "email", name: "email", type: "email", autocomplete: "email", required: true }),
      h("label", { for: "password" }, "Password"),
      h("input", { id: "password", name: "password", type: "password", autocomplete: "new-password", required: true, minlength: "12", "aria-describedby": "password-hint" }),
      h("p", { id: "password-hint", class: "hint" }, "At least 12 characters, not containing your email address."),
      h("p", {}, h("button", { type: "submit" }, "Create account")),
    ),
    async (data) => {
      await session.register(data.get("email"), data.get("password"), data.get("full_name").trim());
      flash("Welcome! Your account is ready.");
      go(nextPage(context));
    },
  );
  context.draw(h("h1", {}, "Create an account"), form);
}

// ---- checkout --------------------------------------------------------------------------

const DRAFT = "storefront.checkout"; // the address typed so far survives a reload
const ATTEMPT = "storefront.checkoutAttempt"; // {body, key}: a resubmission reuses its key
const ADDRESS_FIELDS = [
  ["name", "Full name", "name", true],
  ["line1", "Address line 1", "address-line1", true],
  ["line2", "Address line 2 (optional)", "address-line2", false],
  ["city", "City", "address-level2", true],
  ["postal_code", "Postal code", "postal-code", true],
  ["country", "Country code (two letters, e.g. US)", "country", true],
];

function idempotencyKey(body) {
  // The same order sent again (a lost answer, a double click, a reload) carries the same
  // key, so the shop places it once; another order gets a new key.
  const fingerprint = JSON.stringify(body);
  const stored = JSON.parse(sessionStorage.getItem(ATTEMPT) || "null");
  if (stored && stored.body === fingerprint) return stored.key;
  const key = crypto.randomUUID();
  sessionStorage.setItem(ATTEMPT, JSON.stringify({ body: fingerprint, key }));
  return key;
}

export async function checkout(context) {
  if (!session.signedIn()) throw new ApiError(401, { detail: "Please sign in to check out." });
  const lines = cart.lines();
  if (!lines.length) {
    context.draw(h("h1", {}, "Checkout"), h("p", {}, "Your cart is empty. ", h("a", { href: "#/" }, "Browse the products.")));
    return;
  }
  const draft = JSON.parse(sessionStorage.getItem(DRAFT) || "{}");
  const address = h(
    "fieldset",
    {},
    h("legend", {}, "Shipping address"),
    ADDRESS_FIELDS.map(([name, label, autocomplete, required]) => [
      h("label", { for: name }, label),
      h("input", { id: name, name, autocomplete, required, value: draft[name] || "", maxlength: name === "country" ? "2" : "200" }),
    ]),
  );
  const payment = h(
    "fieldset",
    {},
    h("legend", {}, "Payment"),
    h("label", { for: "card" }, "Card"),
    h("select", { id: "card", name: "card" }, CARDS.map(([token, label]) => h("option", { value: token }, label))),
    h("p", { class: "hint" }, "Test cards only: no real card is charged."),
  );
  const summary = h(
    "ul",
    {},
    lines.map((line) => h("li", {}, `${line.quantity} × ${line.name}`)),
  );
  const form = onSubmit(
    h("form", {}, address, payment, h("p", { class: "price" }, `Estimated total: ${money(cart.total())}`), h("p", {}, h("button", { type: "submit" }, "Place order"))),
    async (data) => {
      const shipping = {};
      for (const [name] of ADDRESS_FIELDS) {
        const value = String(data.get(name) || "").trim();
        if (value) shipping[name] = name === "country" ? value.toUpperCase() : value;
      }
      const body = {
        items: cart.lines().map((line) => ({ sku: line.sku, quantity: line.quantity })),
        payment: { token: data.get("card") },
        shipping_address: shipping,
      };
      const order = await session.call("/orders", {
        method: "POST",
        json: body,
        headers: { "Idempotency-Key": idempotencyKey(body) },
      });
      cart.clear();
      sessionStorage.removeItem(ATTEMPT);
      flash("Thank you! Your order is placed; this page follows it.");
      go(`#/orders/${order.id}`);
    },
  );
  form.addEventListener("input", () => {
    const values = Object.fromEntries(ADDRESS_FIELDS.map(([name]) => [name, form.elements[name].value]));
    sessionStorage.setItem(DRAFT, JSON.stringify(values));
  });
  context.draw(h("h1", {}, "Checkout"), h("h2", {}, "Your items"), summary, form);
}

// ---- orders ----------------------------------------------------------------------------

export async function orders(context) {
  if (context.rest[0]) return order(context, context.rest[0]);
  const cursor = context.query.get("cursor");
  const params = new URLSearchParams({ limit: "10" });
  if (cursor) params.set("cursor", cursor);
  const page = await session.call(`/orders?${params}`);
  const rows = page.items.map((item) =>
    h(
      "tr",
      {},
      h("td", {}, h("a", { href: `#/orders/${item.id}` }, date(item.created_at))),
      h("td", {}, STATUS[item.status] || item.status),
      h("td", {}, money(item.total)),
    ),
  );
  context.draw(
    h("h1", {}, "Your orders"),
    rows.length
      ? h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "Placed"), h("th", {}, "Status"), h("th", {}, "Total"))), h("tbody", {}, rows))
      : h("p", {}, "No orders yet."),
    h(
      "nav",
      { class: "pager", "aria-label": "Pages" },
      cursor ? h("a", { href: "#/orders" }, "First page") : null,
      page.next_cursor ? h("a", { href: `#/orders?cursor=${encodeURIComponent(page.next_cursor)}` }, "Older orders") : null,
    ),
  );
}

function progress(status) {
  const happy = ["pending", "awaiting_payment", "confirmed", "shipped", "delivered"];
  const at = happy.indexOf(status);
  if (at < 0) return null;
  return h(
    "ol",
    { class: "steps", "aria-label": "Order progress" },
    happy.map((step, index) =>
      h("li", { class: index < at ? "done" : null, "aria-current": index === at ? "step" : null }, STATUS[step]),
    ),
  );
}

function paymentsTable(payments) {
  if (!payments.length) return null;
  return h(
    "table",
    {},
    h("caption", { class: "hint" }, "Payments"),
    h("thead", {}, h("tr", {}, h("th", {}, "Amount"), h("th", {}, "Status"), h("th", {}, "Refunded"))),
    h(
      "tbody",
      {},
      payments.map((payment) =>
        h(
          "tr",
          {},
          h("td", {}, money(payment.amount)),
          h("td", {}, payment.status + (payment.failure_reason ? ` (${reason(payment.failure_reason)})` : "")),
          h("td", {}, money(payment.refunded_amount)),
        ),
      ),
    ),
  );
}

async function order(context, id) {
  let delay = POLL_FIRST_MS;
  let cancelError = null;
  let wake = null;
  while (context.alive()) {
    const item = await session.call(`/orders/${encodeURIComponent(id)}`);
    const settled = !IN_FLIGHT.has(item.status);
    const payments = settled || item.status === "refund_pending"
      ? (await session.call(`/payments?order_id=${encodeURIComponent(id)}`)).items
      : [];
    const bad = UNHAPPY.has(item.status);
    // Why it left the happy path: the reason of its first unhappy step (a refund's own
    // step says only "refunded").
    const cause = item.status_history.find((change) => UNHAPPY.has(change.status));
    const refunded = payments.reduce((sum, payment) => sum + payment.refunded_amount.amount, 0);
    const cancel = CANCELLABLE.has(item.status) ? h("button", { type: "button", class: "secondary" }, "Cancel order") : null;
    cancel?.addEventListener("click", async () => {
      cancel.disabled = true;
      try {
        await session.call(`/orders/${encodeURIComponent(id)}/cancel`, { method: "POST" });
        delay = POLL_FIRST_MS;
        cancelError = null;
      } catch (error) {
        cancelError = describe(error);
        showError(error);
      }
      wake?.();
    });
    context.draw(
      h("p", {}, h("a", { href: "#/orders" }, "← Your orders")),
      h("h1", {}, "Order ", h("span", { class: "hint" }, id.slice(0, 8))),
      h(
        "div",
        { role: "status", "aria-live": "polite" },
        h("p", { class: `status ${bad ? "bad" : item.status === "confirmed" || item.status === "delivered" ? "good" : ""}`, id: "order-status" }, STATUS[item.status] || item.status),
        cause && bad ? h("p", { id: "order-reason" }, reason(cause.reason)) : null,
        item.status === "refunded" ? h("p", { id: "order-refund" }, `Refunded ${money({ amount: refunded, currency: item.total.currency })} to your card.`) : null,
        settled ? null : h("p", { class: "hint" }, "Updating…"),
      ),
      progress(item.status),
      cancel ? h("p", {}, cancel) : null,
      cancelError ? h("p", { class: "errors" }, cancelError) : null,
      h(
        "table",
        {},
        h("caption", { class: "hint" }, "Items"),
        h("thead", {}, h("tr", {}, h("th", {}, "Product"), h("th", {}, "Quantity"), h("th", {}, "Price"))),
        h("tbody", {}, item.items.map((line) => h("tr", {}, h("td", {}, line.name), h("td", {}, String(line.quantity)), h("td", {}, money(line.line_total))))),
      ),
      h("p", { class: "price" }, `Total: ${money(item.total)}`),
      paymentsTable(payments),
      h("h2", {}, "History"),
      h("ol", { id: "order-history" }, item.status_history.map((change) => h("li", {}, `${date(change.at)}: ${STATUS[change.status] || change.status}`, change.reason ? ` (${reason(change.reason)})` : ""))),
      h("h2", {}, "Shipping to"),
      h("address", {}, [item.shipping_address.name, item.shipping_address.line1, item.shipping_address.line2, `${item.shipping_address.postal_code} ${item.shipping_address.city}`, item.shipping_address.country].filter(Boolean).map((text) => h("div", {}, text))),
    );
    if (settled && !cancel) return; // nothing more will happen on its own
    // Poll while the saga works; once settled but still cancellable (confirmed), wait for
    // the person instead (a click wakes the loop).
    await new Promise((resolve) => {
      const timer = settled ? null : setTimeout(done, delay);
      function done() {
        clearTimeout(timer);
        window.removeEventListener("hashchange", done);
        resolve();
      }
      wake = done;
      window.addEventListener("hashchange", done);
    });
    delay = Math.min(delay * POLL_FACTOR, POLL_MAX_MS);
  }
}

export async function notFound(context) {
  context.draw(h("h1", {}, "Page not found"), h("p", {}, h("a", { href: "#/" }, "Back to the products.")));
}
