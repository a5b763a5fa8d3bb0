// Money, dates, statuses and reasons as a person reads them, and a small DOM builder that
// never parses strings as HTML (product names and addresses are data, not markup).

export function money({ amount, currency }) {
  const format = new Intl.NumberFormat(undefined, { style: "currency", currency });
  const digits = format.resolvedOptions().maximumFractionDigits;
  return format.format(amount / 10 ** digits);
}

export const date = (value) => new Date(value).toLocaleString();

export const STATUS = {
  pending: "Pending",
  awaiting_payment: "Awaiting payment",
  confirmed: "Confirmed",
  shipped: "Shipped",
  delivered: "Delivered",
  rejected: "Rejected",
  cancelled: "Cancelled",
  refund_pending: "Refund pending",
  refunded: "Refunded",
};

const REASONS = {
  out_of_stock: "An item sold out before we could reserve it for you.",
  unknown_sku: "An item is no longer sold.",
  inactive: "An item is no longer sold.",
  card_declined: "Your card was declined. You were not charged.",
  insufficient_funds: "Your card has insufficient funds. You were not charged.",
  invalid_payment_method: "That payment method is not valid. You were not charged.",
  processing_error: "The payment provider failed. You were not charged.",
  reservation_expired: "The order was not paid in time and has been released.",
  timeout: "The order took too long to complete and was cancelled.",
  cancelled_by_customer: "You cancelled this order.",
  cancelled_by_admin: "The shop cancelled this order.",
  stock_unavailable: "The stock was gone when your payment arrived; you are being refunded.",
  amount_mismatch: "The charge did not match the total; you are being refunded.",
};

/** A status history reason in words; reasons may carry details after a colon. */
export function reason(text) {
  if (!text) return "";
  const key = text.split(":")[0].trim();
  return REASONS[key] || text.replaceAll("_", " ");
}

export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === false || value === null || value === undefined) continue;
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else if (value === true) element.setAttribute(name, "");
    else element.setAttribute(name, value);
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : String(child));
  }
  return element;
}
