// Two browser pages on the chat example: one creates a channel and sends a message, the other
// sees both appear live (and replies). Driven by tests/e2e/test_chat_browser.py.
//
// usage: node chat_two_pages.mjs <dir of package.json> <page url> <chromium executable>
// Prints one JSON line: {"result": {...}} on success, {"fatal": "..."} on failure.
import { createRequire } from "node:module";
import path from "node:path";

const [packageDir, pageUrl, executablePath] = process.argv.slice(2);
// playwright-core is a devDependency of the example (its package.json is at examples/chat).
const require = createRequire(path.join(path.resolve(packageDir), "package.json"));
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
    const open = async (name) => {
      const context = await browser.newContext(); // own localStorage per user
      const page = await context.newPage();
      page.setDefaultTimeout(WAIT_MS);
      page.on("console", (msg) => {
        if (msg.type() === "error") consoleErrors.push(`${name}: ${msg.text()}`);
      });
      page.on("pageerror", (err) => consoleErrors.push(`${name}: ${err.message}`));
      await page.goto(`${pageUrl}?name=${name}`);
      await page.getByText("Create a channel to start chatting.").waitFor();
      return page;
    };
    const ann = await open("ann");
    const bob = await open("bob");

    // Ann creates #general; Bob's channel list updates live and selects it.
    await ann.getByTestId("new-channel").fill("general");
    await ann.getByRole("button", { name: "Create" }).click();
    await ann.getByTestId("channel").filter({ hasText: "#general" }).waitFor();
    await bob.getByTestId("channel").filter({ hasText: "#general" }).waitFor();
    await bob.getByTestId("body").waitFor();

    // Ann sends; Bob sees it.
    await ann.getByTestId("body").fill("hello from ann");
    await ann.getByTestId("send").click();
    await bob.getByTestId("message").filter({ hasText: "hello from ann" }).waitFor();

    // Bob replies; Ann sees it, after her own message.
    await bob.getByTestId("body").fill("hi ann, bob here");
    await bob.getByTestId("send").click();
    await ann.getByTestId("message").filter({ hasText: "hi ann, bob here" }).waitFor();

    const annSees = await ann.getByTestId("message").allInnerTexts();
    const bobSees = await bob.getByTestId("message").allInnerTexts();
    console.log(JSON.stringify({ result: { annSees, bobSees, consoleErrors } }));
  } finally {
    await browser.close();
  }
}

main().catch((err) => {
  console.log(JSON.stringify({ fatal: String(err && err.stack ? err.stack : err) }));
  process.exit(1);
});
