// The storefront's config.js on Kubernetes: the page and the API on one origin, the Ingress
// routing /api to the gateway (infra/k8s/base/ingress.yaml), so no CORS preflight and the
// refresh cookie's SameSite=Strict holds (docs/storefront.md, "one site"). Mounted over the
// image's own config.js, which points at port 8000 of the page's host (Compose, make dev).
export default {
  apiBase: "/api/v1",
  pageSize: 12, // products per catalog page
};
