// The dashboard in a real browser: a wrong admin key is refused, the right one opens it; the
// tables show their counts, a table's documents are listed with Convex values rendered
// readably, a function runs as admin, and function logs arrive live. Driven by tests/e2e/test_dashboard_browser.py.
//
// usage: node dashboard.mjs <dir with node_modules/playwright-core> <server url> <chromium> <admin key>
// Prints one JSON line: {"result": {...}} on success, {"fatal": "..."} on failure.
import { createRequire } from "node:module";
import path from "node:path";

const [modulesDir, serverUrl, executablePath, adminKey] = process.argv.slice(2);
const require = createRequire(path.join(path.resolve(modulesDir), "package.json"));
const { chromium } = require("playwright-core");

const WAIT_MS = 30_000;

async function main() {
  const browser = await chromium.launch({
    executablePath,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  const consoleErrors = [];
  try {
    const page = await (await browser.newContext()).newPage();
    page.setDefaultTimeout(WAIT_MS);
    page.on("console", (msg) => {
      // The refused key below is an expected 401 (the browser logs failed requests).
      if (msg.type() === "error" && !msg.text().includes("401")) consoleErrors.push(msg.text());
    });
    page.on("pageerror", (err) => consoleErrors.push(err.message));
    await page.goto(serverUrl + "/");

    // A wrong key is refused with a hint.
    const keyInput = page.getByTestId("admin-key");
    const hint = await keyInput.getAttribute("placeholder");
    await keyInput.fill("convection|wrong");
    await page.getByTestId("open").click();
    await page.getByText("not valid for this deployment").waitFor();

    // The right key opens the dashboard: tables with their counts.
    await keyInput.fill(adminKey);
    await page.getByTestId("open").click();
    const messages = page.locator('[data-testid="table"][data-table="messages"]');
    await messages.waitFor();
    const messagesCount = await messages.getByTestId("table-count").innerText();
    const valsCount = await page.locator('[data-testid="table"][data-table="vals"] [data-testid="table-count"]').innerText();

    // A table's documents.
    await messages.click();
    const doc = page.getByTestId("document").filter({ hasText: "hello from the browser test" });
    await doc.waitFor();
    const messageDoc = await doc.innerText();
    await page.locator('[data-testid="table"][data-table="vals"]').click();
    const valsDoc = page.getByTestId("document").filter({ hasText: "answer" });
    await valsDoc.waitFor();
    const valueDoc = await valsDoc.innerText();

    // Run a function as admin from the Functions tab.
    await page.getByRole("button", { name: "Functions" }).click();
    const row = page.locator('[data-testid="function"][data-path="vals:get"]');
    await row.getByRole("button", { name: "Run…" }).click();
    await page.getByTestId("run-args").fill('{"key": "answer"}');
    await page.getByTestId("run").click();
    const result = page.getByTestId("run-result");
    await result.getByText("Success").waitFor();
    const runResult = await result.innerText();

    // Live logs: a call made elsewhere shows up through the long-poll.
    await page.getByRole("button", { name: "Logs" }).click();
    await page.getByText("live", { exact: true }).waitFor();
    const r = await fetch(serverUrl + "/api/query", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ path: "messages:list", args: {}, format: "json" }),
    });
    if (!r.ok) throw new Error("messages:list failed: " + r.status);
    const logLine = page.getByTestId("logs").getByText("listing messages");
    await logLine.waitFor();
    const logEntry = await page.getByTestId("logs").innerText();

    console.log(JSON.stringify({
      result: { hint, messagesCount, valsCount, messageDoc, valueDoc, runResult, logEntry, consoleErrors },
    }));
  } finally {
    await browser.close();
  }
}

main().catch((err) => {
  console.log(JSON.stringify({ fatal: String(err && err.stack ? err.stack : err) }));
  process.exit(1);
});
