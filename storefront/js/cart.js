// The cart lives in localStorage: it survives a reload and is shared by the tabs of the
// shop. Prices here are what the catalog showed; the order's prices come from the server.
const KEY = "storefront.cart";

export function lines() {
  try {
    const stored = JSON.parse(localStorage.getItem(KEY) || "[]");
    return Array.isArray(stored) ? stored : [];
  } catch {
    return [];
  }
}

function save(next) {
  localStorage.setItem(KEY, JSON.stringify(next));
  window.dispatchEvent(new Event("cart-changed"));
}

export function add(product, quantity) {
  const next = lines();
  const line = next.find((item) => item.sku === product.sku);
  if (line) line.quantity += quantity;
  else next.push({ sku: product.sku, name: product.name, price: product.price, quantity });
  save(next);
}

export function setQuantity(sku, quantity) {
  save(lines().map((item) => (item.sku === sku ? { ...item, quantity } : item)).filter((item) => item.quantity > 0));
}

export function clear() {
  save([]);
}

export const count = () => lines().reduce((sum, item) => sum + item.quantity, 0);

export function total() {
  const all = lines();
  if (!all.length) return null;
  return { amount: all.reduce((sum, item) => sum + item.price.amount * item.quantity, 0), currency: all[0].price.currency };
}

window.addEventListener("storage", (event) => {
  if (event.key === KEY) window.dispatchEvent(new Event("cart-changed"));
});
