// wahost under PM2 (docs/deployment.md, "ops/pm2/ecosystem.config.js").
//
//   swift build -c release --product wahost
//   pm2 start ops/pm2/ecosystem.config.js
//   pm2 logs wahost                              # the first start prints the 'default' tenant's secrets once
//   pm2 save && pm2 startup                      # restart it at boot
//
// Secrets: export WAHOST_MASTER_KEY and WAHOST_DATABASE_URL in the shell that runs `pm2 start` (they are passed
// through below) rather than writing them into this file. wahost is a native binary, so `interpreter: "none"` and
// one process per data directory (never `exec_mode: "cluster"` or `instances` > 1: wahost's own cluster mode is
// several processes sharing PostgreSQL, see docs/operations.md).
const path = require("path");

const root = path.resolve(__dirname, "..", "..");
const dataDir = process.env.WAHOST_DATA_DIR || path.join(root, "data");

// Only set the variables that are set, so wahost's own defaults apply otherwise.
const passThrough = [
  "WAHOST_MASTER_KEY",
  "WAHOST_DATABASE_URL",
  "WAHOST_CREDENTIALS",
  "WAHOST_NODE_ID",
  "WAHOST_ADVERTISE_URL",
  "WAHOST_LEASE_TTL",
  "WAHOST_BALANCE_MOVES_PER_MINUTE",
  "WAHOST_WA_URL",
  "WAHOST_WA_CA_FILE",
];
const env = {
  WAHOST_HOST: process.env.WAHOST_HOST || "127.0.0.1",
  WAHOST_PORT: process.env.WAHOST_PORT || "8080",
  WAHOST_LOG_LEVEL: process.env.WAHOST_LOG_LEVEL || "info",
};
for (const name of passThrough) {
  if (process.env[name]) env[name] = process.env[name];
}

module.exports = {
  apps: [
    {
      name: "wahost",
      script: process.env.WAHOST_BINARY || path.join(root, ".build", "release", "wahost"),
      args: ["serve", "--data-dir", dataDir],
      cwd: root,
      interpreter: "none",
      exec_mode: "fork",
      instances: 1,
      env,
      autorestart: true,
      // Exit 2 is a bad setting (port, WAHOST_LEASE_TTL, …), 64 a bad flag: restarting cannot fix either.
      stop_exit_codes: [0, 2, 64],
      // PM2 sends SIGTERM, then SIGKILL after kill_timeout ms: wahost stops accepting requests, closes every session
      // without logging it out and hands its leases over, which needs a few seconds with thousands of sessions.
      kill_signal: "SIGTERM",
      kill_timeout: 30000,
      // A process that dies within min_uptime counts as unstable; after max_restarts of those PM2 gives up.
      min_uptime: "30s",
      max_restarts: 10,
      // Waits 1 s, 1.5 s, 2.25 s, … (capped at 15 s by PM2) between restarts, reset after a stable run.
      exp_backoff_restart_delay: 1000,
      merge_logs: true,
      time: true,
    },
  ],
};
