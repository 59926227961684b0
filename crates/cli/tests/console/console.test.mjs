// Drives the Nimbus console in Debian's chromium through playwright-core,
// as a person would: signs in, watches invocations and a live log line
// arrive, opens an invocation and its trace, redrives a dead-letter queue, uploads and
// downloads an object, signs out. Screenshots of each page go to $SHOTS.
// Run by crates/cli/tests/console.rs, which starts the server and seeds it.
import { chromium } from "playwright-core";
import { readFileSync } from "node:fs";

const { ADMIN, TOKEN, GATEWAY, SHOTS, CHROMIUM, UPLOAD, TRACED } = process.env;
const step = (what) => console.log(`step: ${what}`);
const shot = (page, name) => page.screenshot({ path: `${SHOTS}/${name}.png`, fullPage: true });
const expect = (ok, what) => { if (!ok) throw new Error(`expected ${what}`); };

const browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
try {
  const context = await browser.newContext({ acceptDownloads: true });
  const page = await context.newPage();
  page.setDefaultTimeout(20000);
  const errors = [];
  // Uncaught exceptions in the console's script.
  page.on("pageerror", (e) => errors.push(String(e)));

  step("unauthenticated pages send you to sign in");
  await page.goto(`${ADMIN}/console/`);
  expect(page.url().endsWith("/console/login"), `the sign-in page, got ${page.url()}`);
  await page.fill("#token", "not-the-token");
  await page.click("#sign-in");
  await page.getByRole("alert").waitFor();
  await shot(page, "sign-in-refused");

  step("sign in");
  await page.fill("#token", TOKEN);
  await page.click("#sign-in");
  await page.waitForURL(`${ADMIN}/console/`);
  await page.getByRole("heading", { name: "Functions" }).waitFor();
  await shot(page, "overview");

  step("traffic shows up as invocations");
  for (let i = 0; i < 3; i++) {
    const response = await fetch(`${GATEWAY}/print?lines=1`);
    expect(response.ok, "the function to answer");
  }
  await page.goto(`${ADMIN}/console/#/function/printer`);
  // Records reach the store in batches and the list refreshes every 2 s:
  // wait for the third to be listed.
  await page.locator("table a.mono").nth(2).waitFor();

  step("a new log line appears live");
  await page.locator("#log").waitFor();
  // The follow stream is open once the page has drawn; each request prints
  // a line, sent until one shows up (the first may race the subscription).
  const marker = page.locator("#log .log-line", { hasText: "stdout line 0 of 1" }).first();
  for (let i = 0; i < 20 && !(await marker.isVisible()); i++) {
    await fetch(`${GATEWAY}/print?lines=1`);
    await marker.waitFor({ timeout: 1000 }).catch(() => {});
  }
  await marker.waitFor();
  await shot(page, "function");

  step("an invocation's output");
  await page.locator("table a.mono").first().click();
  await page.locator("#output").waitFor();
  const output = await page.locator("#output").textContent();
  expect(output.includes("stdout line 0 of 1") && output.includes("stderr says hi"), `the output, got ${output}`);
  await shot(page, "invocation");

  step("an invocation's trace as a span tree");
  await page.goto(`${ADMIN}/console/#/invocation/${TRACED}`);
  // A new hash only: until this invocation's page replaces it, the page
  // (and its #spans) is still the invocation of the step before.
  await page.locator("h1", { hasText: `Invocation ${TRACED}` }).waitFor();
  await page.locator("#spans").waitFor();
  // invoke caller > call callee > invoke callee, the last one another
  // invocation's, linked.
  const root = page.locator("#spans > li.current");
  expect((await root.locator(":scope > .span-row .span-name").textContent()) === "invoke caller", "the caller's span at the root");
  const call = root.locator(":scope > ul > li.current");
  expect((await call.locator(":scope > .span-row .span-name").textContent()) === "call callee", "the call under it");
  const callee = call.locator(":scope > ul > li:not(.current)");
  expect((await callee.locator(":scope > .span-row .span-name").textContent()) === "invoke callee", "the callee's span under the call");
  await callee.locator(":scope > .span-row a", { hasText: "callee" }).click();
  await page.locator("h1", { hasText: "Invocation" }).waitFor();
  await page.locator("#spans li.current .span-name", { hasText: "invoke callee" }).waitFor();
  expect(!page.url().endsWith(TRACED), "the callee's own page");
  await shot(page, "trace");

  step("redrive a dead-letter queue");
  await page.goto(`${ADMIN}/console/#/queue/jobs-dlq`);
  await page.locator("#depth", { hasText: "1" }).waitFor();
  await shot(page, "dead-letter-queue");
  await page.click("#redrive");
  await page.locator("#depth", { hasText: "0" }).waitFor();
  await page.locator("#status", { hasText: "moved 1" }).waitFor();

  step("upload and download an object");
  await page.goto(`${ADMIN}/console/#/bucket/files`);
  await page.locator("#upload-file").setInputFiles(UPLOAD);
  await page.click("#upload");
  const name = UPLOAD.split("/").pop();
  const link = page.getByRole("link", { name: "Download" }).first();
  await link.waitFor();
  await shot(page, "bucket");
  const [download] = await Promise.all([page.waitForEvent("download"), link.click()]);
  const downloaded = readFileSync(await download.path());
  expect(downloaded.equals(readFileSync(UPLOAD)), `the downloaded ${name} to equal the upload`);

  step("the other pages draw");
  for (const [hash, heading] of [["#/queues", "Queues"], ["#/tables", "Tables"], ["#/keys", "Keys"], ["#/secrets", "Secrets"], ["#/usage", "Usage, the last day"], ["#/deployments", "Deployments"], ["#/cluster", "Cluster"]]) {
    await page.goto(`${ADMIN}/console/${hash}`);
    await page.getByRole("heading", { name: heading, exact: true }).waitFor();
    await shot(page, hash.slice(2));
  }

  step("sign out");
  await page.click("#sign-out");
  await page.waitForURL(`${ADMIN}/console/login`);
  await page.goto(`${ADMIN}/console/`);
  expect(page.url().endsWith("/console/login"), "signed out");
  expect(errors.length === 0, `no script errors, got ${errors.join("; ")}`);
  step("done");
} finally {
  await browser.close();
}
