export { DASHBOARD_DEFAULTS, loadDashboardEnv, metricsUrlOf } from "./config.ts";
export { type Dashboard, type DashboardOptions, startDashboard } from "./server.ts";
