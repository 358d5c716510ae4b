// The getting-started tutorial's page (docs/getting-started.md) in headless Chromium. Driven by
// tests/e2e/test_getting_started.py.
//
// usage: node tutorial_page.mjs <dir with playwright-core> <page url> <chromium> <phase>
//   phase "tasks": two pages; a task added in one appears in the other; the action adds 3.
//   phase "auth":  sign in as ann; whoami shows ann; a task added then shows "(ann)".
// Prints one JSON line: {"result": {...}} on success, {"fatal": "..."} on failure.
import { createRequire } from "node:module";
import path from "node:path";

const [modulesDir, pageUrl, executablePath, phase] = process.argv.slice(2);
const require = createRequire(path.join(path.resolve(modulesDir), "package.json"));
const { chromium } = require("playwright-core");

const WAIT_MS = 30_000;

async function main() {
  const browser = await chromium.launch({
    executablePath,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"],
  });
  const consoleErrors = [];
  try {
    const open = async (name) => {
      const page = await (await browser.newContext()).newPage();
      page.setDefaultTimeout(WAIT_MS);
      page.on("console", (msg) => {
        if (msg.type() === "error") consoleErrors.push(`${name}: ${msg.text()}`);
      });
      page.on("pageerror", (err) => consoleErrors.push(`${name}: ${err.message}`));
      await page.goto(pageUrl);
      await page.getByRole("heading", { name: "Todo" }).waitFor();
      return page;
    };
    const tasks = (page) => page.getByTestId("task").allInnerTexts();
    if (phase === "tasks") {
      const one = await open("one");
      const two = await open("two");
      await one.getByTestId("task").filter({ hasText: "Buy milk" }).waitFor();
      await one.getByPlaceholder("What needs doing?").fill("Write the tutorial");
      await one.getByRole("button", { name: "Add", exact: true }).click();
      await two.getByTestId("task").filter({ hasText: "Write the tutorial" }).waitFor();
      await two.getByRole("button", { name: "Add 3 samples" }).click();
      await one.getByTestId("task").filter({ hasText: "Sample task 5" }).waitFor();
      // The checkbox is controlled by the query's result: it turns checked once the mutation
      // committed and the new result arrived (in both pages).
      await one.getByTestId("task").filter({ hasText: "Write the tutorial" }).getByRole("checkbox").click();
      for (const page of [one, two]) {
        await page.getByTestId("task").filter({ hasText: "Write the tutorial" }).getByRole("checkbox", { checked: true }).waitFor();
      }
      console.log(JSON.stringify({ result: { one: await tasks(one), two: await tasks(two), consoleErrors } }));
    } else {
      const ann = await open("ann");
      await ann.getByPlaceholder("Your name").fill("ann");
      await ann.getByRole("button", { name: "Sign in" }).click();
      await ann.getByTestId("me").filter({ hasText: "ann" }).waitFor();
      await ann.getByPlaceholder("What needs doing?").fill("Signed task");
      await ann.getByRole("button", { name: "Add", exact: true }).click();
      await ann.getByTestId("task").filter({ hasText: "Signed task (ann)" }).waitFor();
      await ann.getByRole("button", { name: "Sign out" }).click();
      await ann.getByRole("button", { name: "Sign in" }).waitFor();
      console.log(JSON.stringify({ result: { me: "ann", tasks: await tasks(ann), consoleErrors } }));
    }
  } finally {
    await browser.close();
  }
}

main().catch((err) => {
  console.log(JSON.stringify({ fatal: String(err && err.stack ? err.stack : err) }));
  process.exit(1);
});
