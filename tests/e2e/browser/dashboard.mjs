// The dashboard in a real browser (headless Chromium via playwright-core), against a real
// `convection serve`. Driven by tests/e2e/test_dashboard_browser.py, which seeds the data and
// asserts on the JSON this prints. Phases:
//   login (a wrong key refused, the right one opens), the grid (paging, sort by an index,
//   filter), insert / inline edit / a schema-breaking edit refused / delete, a second tab
//   updating live, files (upload, preview, delete; /files is a page), the call log (a failing
//   mutation with its error, filtered), schema, functions, an export and an import, the layout
//   at 420 px and the keyboard.
//
// usage: node dashboard.mjs <dir with node_modules/playwright-core> <server url> <chromium> <admin key> <work dir> [screenshots dir]
// Prints {"phase": ...} lines as it goes, then {"result": {...}}, or {"fatal": "..."} on failure.
import { createRequire } from "node:module";
import path from "node:path";
import zlib from "node:zlib";

const [modulesDir, serverUrl, executablePath, adminKey, workDir, shotsDir] = process.argv.slice(2);
const require = createRequire(path.join(path.resolve(modulesDir), "package.json"));
const { chromium } = require("playwright-core");

const WAIT_MS = 30_000;
const result = {};
const consoleErrors = [];

function phase(name) { console.log(JSON.stringify({ phase: name })); }
async function shot(page, name) {
  if (shotsDir) await page.screenshot({ path: path.join(shotsDir, "dashboard-" + name + ".png") });
}

// A small gradient PNG (so the preview has something to show).
function png(width, height) {
  const crcTable = Array.from({ length: 256 }, (_, n) => { let c = n; for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1; return c >>> 0; });
  const crc = (buf) => { let c = 0xffffffff; for (const b of buf) c = crcTable[(c ^ b) & 0xff] ^ (c >>> 8); return (c ^ 0xffffffff) >>> 0; };
  const chunk = (type, data) => {
    const len = Buffer.alloc(4); len.writeUInt32BE(data.length);
    const td = Buffer.concat([Buffer.from(type), data]);
    const c = Buffer.alloc(4); c.writeUInt32BE(crc(td));
    return Buffer.concat([len, td, c]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0); ihdr.writeUInt32BE(height, 4); ihdr[8] = 8; ihdr[9] = 2;
  const raw = Buffer.alloc((width * 3 + 1) * height);
  for (let y = 0; y < height; y++) {
    raw[y * (width * 3 + 1)] = 0;
    for (let x = 0; x < width; x++) {
      const o = y * (width * 3 + 1) + 1 + x * 3;
      raw[o] = 47 + (x * 160) / width; raw[o + 1] = 95 + (y * 120) / height; raw[o + 2] = 208;
    }
  }
  return Buffer.concat([Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]), chunk("IHDR", ihdr), chunk("IDAT", zlib.deflateSync(raw)), chunk("IEND", Buffer.alloc(0))]);
}

async function call(kind, fnPath, args) {
  const r = await fetch(serverUrl + "/api/" + kind, {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ path: fnPath, args, format: "json" }),
  });
  return r.json();
}

async function newPage(context) {
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT_MS);
  page.on("console", (msg) => {
    // The refused key below is an expected 401 (the browser logs failed requests).
    if (msg.type() === "error" && !msg.text().includes("401")) consoleErrors.push(msg.text());
  });
  page.on("pageerror", (err) => consoleErrors.push(err.message));
  page.on("dialog", (dialog) => dialog.accept());
  return page;
}

async function login(page, urlPath = "/") {
  await page.goto(serverUrl + urlPath);
  await page.getByTestId("admin-key").fill(adminKey);
  await page.getByTestId("open").click();
  await page.getByTestId("sync-status").getByText("live").waitFor();
}

const rows = (page) => page.locator('[data-testid="grid"] [data-testid="row"]');
const cellTexts = async (page, field) => page.locator(`[data-testid="row"] td[data-field="${field}"]`).allInnerTexts();
const count = (page, table) => page.locator(`[data-testid="table"][data-table="${table}"] [data-testid="table-count"]`).innerText();

async function main() {
  const browser = await chromium.launch({
    executablePath,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  try {
    const context = await browser.newContext({ viewport: { width: 1280, height: 820 }, acceptDownloads: true });
    const page = await newPage(context);

    // --- login ------------------------------------------------------------------------------
    phase("login");
    await page.goto(serverUrl + "/");
    const keyInput = page.getByTestId("admin-key");
    result.hint = await keyInput.getAttribute("placeholder");
    await shot(page, "login");
    await keyInput.fill("convection|wrong");
    await keyInput.press("Enter"); // the keyboard submits the form
    await page.getByText("not valid for this deployment").waitFor();
    await keyInput.fill(adminKey);
    await page.getByTestId("open").click();
    await page.getByTestId("sync-status").getByText("live").waitFor();
    result.messagesCount = await count(page, "messages");
    result.valsCount = await count(page, "vals");

    // --- the grid: paging, sort, filter -------------------------------------------------------
    phase("grid");
    await page.locator('[data-testid="table"][data-table="counters"] button').click();
    await page.getByTestId("grid-size").selectOption("10");
    await page.getByTestId("page-info").getByText("page 1").waitFor();
    await rows(page).nth(9).waitFor();
    result.page1Rows = await rows(page).count();
    result.page1Names = await cellTexts(page, "name");
    await page.getByTestId("page-next").click();
    await page.getByTestId("page-info").getByText("page 2").waitFor();
    await page.waitForFunction(() => document.querySelectorAll('[data-testid="row"]').length === 10);
    result.page2Names = await cellTexts(page, "name");
    await page.getByTestId("page-prev").click();
    await page.getByTestId("page-info").getByText("page 1").waitFor();
    // Sort by the by_name index, ascending then descending.
    await page.getByTestId("grid-index").selectOption("by_name");
    await page.getByTestId("grid-order").selectOption("asc");
    await page.waitForFunction(() => document.querySelector('[data-testid="row"] td[data-field="name"]')?.textContent === "c00");
    result.sortedAsc = await cellTexts(page, "name");
    await page.getByTestId("grid-order").selectOption("desc");
    await page.waitForFunction(() => document.querySelector('[data-testid="row"] td[data-field="name"]')?.textContent === "c29");
    result.sortedDesc = await cellTexts(page, "name");
    // Filter by a field (typed with the keyboard: Enter adds it).
    await page.getByTestId("filter-field").selectOption("n");
    await page.getByTestId("filter-op").selectOption("gte");
    await page.getByTestId("filter-value").fill("25");
    await page.getByTestId("filter-value").press("Enter");
    await page.waitForFunction(() => document.querySelectorAll('[data-testid="row"]').length === 5);
    result.filteredNs = (await cellTexts(page, "n")).map(Number).sort((a, b) => a - b);
    result.filterChip = await page.getByTestId("filter").innerText();
    await shot(page, "data");
    await page.getByRole("button", { name: "Remove filter on n" }).click();
    await page.waitForFunction(() => document.querySelectorAll('[data-testid="row"]').length === 10);

    // --- insert, inline edit, a schema-breaking edit, delete ----------------------------------
    phase("edit");
    await page.locator('[data-testid="table"][data-table="messages"] button').click();
    await page.getByTestId("insert").click();
    await page.getByTestId("doc-json").fill('{"body": "inserted from the grid", "author": "dash"}');
    await page.getByTestId("doc-json").press("Control+Enter");
    const inserted = rows(page).filter({ hasText: "inserted from the grid" });
    await inserted.waitFor();
    result.insertedId = await inserted.getAttribute("data-id");
    // Inline edit of a string field: double-click, type, Enter.
    await inserted.locator('td[data-field="body"]').dblclick();
    await page.getByTestId("cell-input").fill("edited inline");
    await page.getByTestId("cell-input").press("Enter");
    const edited = page.locator(`[data-testid="row"][data-id="${result.insertedId}"] td[data-field="body"]`);
    await edited.getByText("edited inline").waitFor();
    result.editedBody = await edited.innerText();
    // The keyboard: focus a cell, Enter opens its editor, Escape cancels.
    await edited.focus();
    await edited.press("Enter");
    await page.getByTestId("cell-input").waitFor();
    await page.getByTestId("cell-input").press("Escape");
    await page.getByTestId("cell-input").waitFor({ state: "detached" });
    result.escapeKept = await edited.innerText();
    // A JSON edit that breaks the schema is refused with its message.
    await page.locator(`[data-testid="row"][data-id="${result.insertedId}"]`).getByRole("button", { name: /^Edit / }).click();
    await page.getByTestId("doc-json").fill('{"body": 12}');
    await page.getByTestId("doc-save").click();
    await page.getByTestId("doc-error").getByText("does not match the schema").waitFor();
    result.schemaError = await page.getByTestId("doc-error").innerText();
    await shot(page, "edit-refused");
    await page.keyboard.press("Escape");
    await page.getByTestId("doc-editor").waitFor({ state: "hidden" });
    result.afterRefused = await edited.innerText();
    // Delete (the confirm dialog is accepted).
    await page.locator(`[data-testid="row"][data-id="${result.insertedId}"]`).getByTestId("delete").click();
    await page.locator(`[data-testid="row"][data-id="${result.insertedId}"]`).waitFor({ state: "detached" });
    result.deleted = true;

    // --- a second tab updates live ------------------------------------------------------------
    phase("live");
    const second = await newPage(context);
    await login(second);
    await second.locator('[data-testid="table"][data-table="messages"] button').click();
    await rows(second).first().waitFor();
    const before = Number(await count(second, "messages"));
    const firstBefore = Number(await count(page, "messages"));
    const sent = await call("mutation", "messages:send", { body: "written by another client", author: "other" });
    if (sent.status !== "success") throw new Error("messages:send failed: " + JSON.stringify(sent));
    await rows(second).filter({ hasText: "written by another client" }).waitFor();
    await second.waitForFunction((n) => document.querySelector('[data-table="messages"] [data-testid="table-count"]').textContent === String(n), before + 1);
    await page.waitForFunction((n) => document.querySelector('[data-table="messages"] [data-testid="table-count"]').textContent === String(n), firstBefore + 1);
    result.liveCounts = [before, Number(await count(second, "messages")), Number(await count(page, "messages"))];
    result.liveInfo = await second.getByTestId("docs-info").innerText();
    await second.close();

    // --- files ------------------------------------------------------------------------------
    phase("files");
    const filesResponse = await page.goto(serverUrl + "/files");
    result.filesStatus = filesResponse.status();
    await page.getByTestId("sync-status").getByText("live").waitFor(); // signed in from session storage
    await page.getByTestId("upload-file").setInputFiles({ name: "gradient.png", mimeType: "image/png", buffer: png(120, 80) });
    await page.getByTestId("upload").click();
    await page.getByTestId("upload-status").getByText("Uploaded gradient.png").waitFor();
    const fileRow = page.getByTestId("file").first();
    await fileRow.waitFor();
    result.fileRow = await fileRow.innerText();
    await fileRow.getByRole("button", { name: /^Preview / }).click();
    await page.getByTestId("file-preview").waitFor();
    await page.waitForFunction(() => document.getElementById("file-preview-img").naturalWidth > 0);
    result.previewWidth = await page.evaluate(() => document.getElementById("file-preview-img").naturalWidth);
    const download = await page.locator('[data-testid="file"] [data-testid="download"]').first().getAttribute("href");
    result.downloadStatus = (await fetch(serverUrl + download)).status;
    await shot(page, "files");
    await page.keyboard.press("Escape");
    await fileRow.getByTestId("delete-file").click();
    await page.getByTestId("files").getByText("No stored files").waitFor();
    result.fileDeleted = true;

    // --- the call log -------------------------------------------------------------------------
    phase("logs");
    await page.getByRole("button", { name: "Logs", exact: true }).click();
    await page.getByTestId("logs-status").getByText("live").waitFor();
    const failed = await call("mutation", "messages:fail", {});
    if (failed.status !== "error") throw new Error("messages:fail did not fail");
    const failure = page.locator('[data-testid="call"][data-path="messages:fail"]').first();
    await failure.waitFor();
    result.failureEntry = await failure.innerText();
    await call("query", "messages:list", {});
    await page.locator('[data-testid="call"][data-path="messages:list"]').first().waitFor();
    await shot(page, "logs");
    await page.getByTestId("logs-status-filter").selectOption("failure");
    await page.getByTestId("logs-path").fill("messages");
    await page.getByTestId("logs-path").press("Enter");
    await page.locator('[data-testid="call"][data-path="messages:fail"]').first().waitFor();
    result.filteredStatuses = [...new Set(await page.locator('[data-testid="call"]').evaluateAll((els) => els.map((e) => e.dataset.status)))];

    // --- schema and functions ---------------------------------------------------------------
    phase("schema");
    await page.getByRole("button", { name: "Schema", exact: true }).click();
    const counters = page.locator('[data-testid="schema-table"][data-table="counters"]');
    await counters.getByText("by_name").waitFor();
    result.schemaCounters = await counters.innerText();
    result.schemaState = await page.getByTestId("schema-state").innerText();
    await shot(page, "schema");
    await page.getByRole("button", { name: "Functions", exact: true }).click();
    const row = page.locator('[data-testid="function"][data-path="vals:get"]');
    await row.getByRole("button", { name: "Run vals:get" }).click();
    await page.getByTestId("run-args").fill('{"key": "answer"}');
    await page.getByTestId("run").click();
    await page.getByTestId("run-result").getByText("Success").waitFor();
    result.runResult = await page.getByTestId("run-result").innerText();
    await shot(page, "functions");
    // Schedules (a job scheduled for later) and Environment (a variable set with the form).
    await call("mutation", "dash:later", {});
    await page.getByRole("button", { name: "Schedules", exact: true }).click();
    await page.locator("#scheduled").getByText("messages:send").first().waitFor();
    result.scheduled = await page.locator("#scheduled").innerText();
    await shot(page, "schedules");
    await page.getByRole("button", { name: "Environment", exact: true }).click();
    await page.getByLabel("Variable name", { exact: true }).fill("GREETING");
    await page.getByLabel("Value", { exact: true }).fill("hello");
    await page.getByLabel("Value", { exact: true }).press("Enter");
    await page.locator("#env").getByText("GREETING").waitFor();
    result.env = await page.locator("#env").innerText();
    await shot(page, "env");

    // --- backups: export, then import it back (replace) ----------------------------------------
    phase("backups");
    await page.getByRole("button", { name: "Backups", exact: true }).click();
    result.beforeExportBodies = (await call("query", "messages:list", {})).value.map((m) => m.body);
    const downloadEvent = page.waitForEvent("download");
    await page.getByTestId("export").click();
    const zip = await downloadEvent;
    const zipPath = path.join(workDir, zip.suggestedFilename());
    await zip.saveAs(zipPath);
    await page.getByTestId("export-status").getByText("Exported").waitFor();
    result.exportStatus = await page.getByTestId("export-status").innerText();
    result.zipName = zip.suggestedFilename();
    // A write after the export, which the import (mode replace) takes back.
    await call("mutation", "messages:send", { body: "after the export" });
    await page.getByTestId("import-file").setInputFiles(zipPath);
    await page.getByTestId("import-mode").selectOption("replace");
    await page.getByTestId("import").click();
    await page.getByTestId("import-status").getByText("Imported").waitFor({ timeout: 60_000 });
    result.importStatus = await page.getByTestId("import-status").innerText();
    result.importProgress = await page.getByTestId("import-progress").evaluate((p) => [p.value, p.max]);
    await shot(page, "backups");
    const after = await call("query", "messages:list", {});
    result.afterImportBodies = after.value.map((m) => m.body);

    // --- 420 px wide, and the keyboard --------------------------------------------------------
    phase("narrow");
    await page.setViewportSize({ width: 420, height: 820 });
    await page.getByRole("button", { name: "Data", exact: true }).focus();
    await page.keyboard.press("Enter");
    await page.waitForURL(serverUrl + "/data");
    await rows(page).first().waitFor();
    const boxes = await page.evaluate(() => [...document.querySelectorAll("#tabs button"), document.getElementById("sign-out")]
      .map((b) => { const r = b.getBoundingClientRect(); return { name: b.textContent, left: r.left, right: r.right, width: r.width, height: r.height }; }));
    result.narrowBoxes = boxes;
    result.pageWidth = await page.evaluate(() => document.documentElement.scrollWidth);
    if (result.pageWidth > 420) {  // say what sticks out
      result.overflowing = await page.evaluate(() => [...document.querySelectorAll("body *")]
        .filter((e) => (e.getBoundingClientRect().right > 421 || e.scrollWidth > 421) && !(e.parentElement && e.parentElement.closest(".scroll")))
        .map((e) => e.tagName + "#" + e.id + "." + e.className + " " + Math.round(e.getBoundingClientRect().right) + " sw " + e.scrollWidth).slice(0, 12));
    }
    await shot(page, "narrow");
    // Tab order: from the Sign-out button the next stop is the first page button.
    await page.locator("#sign-out").focus();
    await page.keyboard.press("Tab");
    result.afterSignOutFocus = await page.evaluate(() => document.activeElement.textContent);
    await page.setViewportSize({ width: 1280, height: 820 });
    await page.locator("#sign-out").click();
    await page.getByTestId("admin-key").waitFor();

    result.consoleErrors = consoleErrors;
    console.log(JSON.stringify({ result }));
  } finally {
    await browser.close();
  }
}

main().catch((err) => {
  console.log(JSON.stringify({ fatal: String(err && err.stack ? err.stack : err), partial: result }));
  process.exit(1);
});
