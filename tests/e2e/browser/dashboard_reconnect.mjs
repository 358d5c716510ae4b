// The dashboard's sync client survives a server restart: it reconnects by itself and the grid
// is live again. Driven by tests/e2e/test_dashboard_browser.py (NodeScript protocol: JSON
// lines out, lines in).
//
// usage: node dashboard_reconnect.mjs <server url> '{"modulesDir", "chromium", "adminKey"}'
// Prints {"phase": "ready"}, waits for the line "restarted", then {"phase": "down-seen"?} and
// {"result": {...}}; {"fatal": "..."} on failure.
import { createRequire } from "node:module";
import path from "node:path";
import readline from "node:readline";

const [serverUrl, paramsJson] = process.argv.slice(2);
const { modulesDir, chromium: executablePath, adminKey } = JSON.parse(paramsJson);
const require = createRequire(path.join(path.resolve(modulesDir), "package.json"));
const { chromium } = require("playwright-core");

const input = readline.createInterface({ input: process.stdin });
const lines = [];
let waiting = null;
input.on("line", (line) => { if (waiting) { const w = waiting; waiting = null; w(line); } else lines.push(line); });
const nextLine = () => (lines.length ? Promise.resolve(lines.shift()) : new Promise((resolve) => { waiting = resolve; }));

async function main() {
  const browser = await chromium.launch({ executablePath, args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"] });
  const errors = [];
  try {
    const page = await (await browser.newContext()).newPage();
    page.setDefaultTimeout(60_000);
    page.on("pageerror", (err) => errors.push(err.message));
    await page.goto(serverUrl + "/data");
    await page.getByTestId("admin-key").fill(adminKey);
    await page.getByTestId("open").click();
    await page.getByTestId("sync-status").getByText("live").waitFor();
    await page.locator('[data-testid="table"][data-table="messages"] button').click();
    await page.locator('[data-testid="row"]').first().waitFor();
    console.log(JSON.stringify({ phase: "ready" }));
    if ((await nextLine()) !== "restarted") throw new Error("expected 'restarted'");
    const r = await fetch(serverUrl + "/api/mutation", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ path: "messages:send", args: { body: "after the restart" }, format: "json" }),
    });
    if ((await r.json()).status !== "success") throw new Error("messages:send failed after the restart");
    await page.locator('[data-testid="row"]').filter({ hasText: "after the restart" }).waitFor();
    const status = await page.getByTestId("sync-status").innerText();
    const count = await page.locator('[data-table="messages"] [data-testid="table-count"]').innerText();
    console.log(JSON.stringify({ result: { status, count, errors } }));
  } finally {
    await browser.close();
    input.close();
  }
}

main().catch((err) => {
  console.log(JSON.stringify({ fatal: String(err && err.stack ? err.stack : err) }));
  process.exit(1);
});
