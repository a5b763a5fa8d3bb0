// Where the storefront finds the API. The default is the gateway on port 8000 of the host
// that served this page: the same site, so the refresh cookie's SameSite=Strict holds.
// A deployment serving the API under the storefront's own origin replaces this file with
// `export default { apiBase: "/api/v1" };` (docs/storefront.md).
export default {
  apiBase: `${location.protocol}//${location.hostname}:8000/api/v1`,
  pageSize: 12, // products per catalog page
};
