// Where the dashboard finds the API. Empty: the page's own origin (the API serves the dashboard,
// or a proxy passes /api/ to it). To serve these files from a CDN, set `api` to the API's public
// address before uploading (or open the page with ?api=https://...). The dashboard's container
// writes this file at start from ARBX_API_URL.
window.ARBX_CONFIG = { api: "" };
