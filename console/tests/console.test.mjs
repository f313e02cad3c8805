// The console in headless Chromium against a running `flowhost serve` that holds the demo's
// data (crates/cli/tests/cli/console.rs starts `flowhost demo --hold` and runs this).
//
// Environment: CONSOLE_URL (http://127.0.0.1:PORT), API_KEY, PLUGINS_DIR (the service's
// plugins folder), REPLY_TEXT (what the agent answers), SCREENSHOTS (a folder for them),
// CHROMIUM (default /usr/bin/chromium).

import assert from "node:assert/strict";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

const base = process.env.CONSOLE_URL;
const key = process.env.API_KEY;
const shots = process.env.SCREENSHOTS;
const reply = process.env.REPLY_TEXT;
assert.ok(base && key && shots && reply && process.env.PLUGINS_DIR, "CONSOLE_URL, API_KEY, PLUGINS_DIR, REPLY_TEXT and SCREENSHOTS must be set");
mkdirSync(shots, { recursive: true });

/** The API itself, to compare the page with. */
async function api(path, init = {}) {
  const res = await fetch(base + path, {
    ...init,
    headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json" },
  });
  assert.ok(res.ok, `${path}: ${res.status} ${await res.clone().text()}`);
  return res.json();
}

const step = (name) => console.log(`console test: ${name}`);
const num = (text) => Number(String(text).replace(/[^0-9]/g, ""));

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
  page.setDefaultTimeout(15_000);
  const urls = [];
  page.on("request", (r) => urls.push(r.url()));
  const consoleErrors = [];
  page.on("console", (m) => m.type() === "error" && consoleErrors.push(m.text()));
  page.on("pageerror", (e) => consoleErrors.push(String(e)));

  step("a wrong API key is refused");
  await page.goto(`${base}/console/`);
  await page.fill("#api-key", "not-the-key");
  await page.click("button[type=submit]");
  await page.waitForFunction(() => document.querySelector("#sign-in-error")?.textContent.includes("refused"));
  assert.equal(await page.locator("table.flows").count(), 0, "nothing is shown with a wrong key");
  await page.screenshot({ path: join(shots, "sign-in-refused.png") });

  step("the flows page, with the API's counts");
  await page.fill("#api-key", key);
  await page.click("button[type=submit]");
  await page.waitForSelector("tr[data-flow=order-updates]");
  const { flows } = await api("/v1/flows");
  for (const f of flows) {
    const row = page.locator(`tr[data-flow="${f.id}"]`);
    assert.equal(num(await row.locator("[data-count=completed]").textContent()), f.participants.completed, `${f.id} completed`);
    assert.equal(num(await row.locator("[data-count=waiting]").textContent()), f.participants.waiting, `${f.id} waiting`);
  }
  await page.screenshot({ path: join(shots, "flows.png"), fullPage: true });

  step("a flow, drawn: hovering an element shows its analytics");
  await page.click("a[href='#/flows/order-updates']");
  const def = await api("/v1/flows/order-updates");
  await page.waitForFunction((n) => document.querySelectorAll("g.node").length === n, def.elements.length);
  const analytics = (await api("/v1/flows/order-updates/analytics")).elements;
  const lookup = analytics.find((a) => a.element_id === "lookup");
  assert.ok(lookup.entered > 0, "the demo ran participants through lookup");
  // Counts arrive with the first refresh.
  await page.waitForFunction(
    (n) => document.querySelector("g.node[data-element=lookup] .counts .n")?.textContent === String(n),
    lookup.entered,
  );
  assert.match(await page.locator("g.node[data-element=lookup] .type").textContent(), /^plugin order-status@\d+\.\d+\.\d+$/);
  await page.hover("g.node[data-element=lookup]");
  const tip = page.locator("#element-tip");
  await tip.waitFor({ state: "visible" });
  assert.equal(num(await tip.locator("[data-stat=entered]").textContent()), lookup.entered);
  assert.equal(num(await tip.locator("[data-stat=waiting]").textContent()), lookup.waiting);
  for (const [exit, n] of Object.entries(lookup.exits)) {
    assert.equal(num(await tip.locator(`tr[data-exit="${exit}"] td.num`).textContent()), n, `lookup exit ${exit}`);
    assert.equal(
      num(await page.locator(`g.node[data-element=lookup] text[data-exit="${exit}"] .n`).textContent()),
      n,
      `lookup box, exit ${exit}`,
    );
  }
  await page.screenshot({ path: join(shots, "flow.png"), fullPage: true });
  // Keyboard users get the same by focusing an element.
  await page.mouse.move(0, 0);
  await page.focus("g.node[data-element=points]");
  await page.waitForFunction(() => document.querySelector("#element-tip h2")?.textContent === "points");
  const points = analytics.find((a) => a.element_id === "points");
  assert.equal(num(await tip.locator("[data-stat=entered]").textContent()), points.entered);

  step("the chatbot element's full analytics");
  await page.goto(`${base}/console/#/flows/support-desk`);
  await page.waitForSelector("g.node[data-element=bot]");
  const bot = (await api("/v1/flows/support-desk/analytics")).elements.find((a) => a.element_id === "bot");
  await page.waitForFunction(
    (n) => document.querySelector("g.node[data-element=bot] .counts .n")?.textContent === String(n),
    bot.entered,
  );
  await page.hover("g.node[data-element=bot]");
  await tip.waitFor({ state: "visible" });
  for (const [name, n] of Object.entries(bot.details)) {
    assert.equal(num(await tip.locator(`tr[data-detail="${name}"] td.num`).textContent()), n, `bot ${name}`);
  }
  assert.ok(bot.details.sessions > 0, "sessions are counted");

  step("a journey, found by a person's contact");
  await page.goto(`${base}/console/#/journeys`);
  await page.fill("#find", "grace@example.com");
  await page.press("#find", "Enter");
  const found = await api("/v1/participants?contact=grace%40example.com");
  const grace = found.participants.find((p) => p.flow === "order-updates");
  await page.click(`a[href='#/journeys?participant=${grace.id}']`);
  const { journey } = await api(`/v1/participants/${grace.id}/journey`);
  await page.waitForFunction((n) => document.querySelectorAll("li.step").length === n, journey.length);
  const sent = journey.filter((e) => e.requests?.length);
  assert.ok(sent.length >= 2, "the plugin and Call API steps sent requests");
  for (const e of sent) {
    const rows = page.locator(`li.step[data-seq="${e.seq}"] table.requests tr`);
    assert.equal(await rows.count(), e.requests.length, `requests of step ${e.seq}`);
    assert.match(await rows.first().textContent(), new RegExp(`${e.requests[0].method}.*${e.requests[0].status}`));
  }
  const text = await page.locator("main").textContent();
  assert.ok(!text.includes("demo-shop-token"), "no secret is shown");
  await page.screenshot({ path: join(shots, "journey.png"), fullPage: true });

  step("the agent desk: assign, reply, and the reply is delivered");
  await page.goto(`${base}/console/#/desk`);
  const open = (await api("/v1/conversations?status=open")).conversations;
  assert.equal(open.length, 1, "the demo leaves one conversation waiting");
  await page.click(`li[data-conversation="${open[0].id}"] a`);
  await page.waitForSelector("#agent");
  await page.fill("#agent", "maja");
  await page.click("form.assign button");
  await page.waitForSelector("#reply");
  await page.fill("#reply", reply);
  await page.click("form.reply button");
  await page.waitForFunction(
    (t) => [...document.querySelectorAll("li.message.agent")].some((m) => m.textContent.includes(t) && m.querySelector(".sending.sent")),
    reply,
    { timeout: 20_000 },
  );
  const after = await api(`/v1/conversations/${open[0].id}`);
  assert.equal(after.agent, "maja");
  const answer = after.messages.find((m) => m.text === reply);
  assert.equal(answer.sending.state, "sent");
  await page.screenshot({ path: join(shots, "desk.png"), fullPage: true });

  step("plugins, and a hot reload as it happens");
  await page.goto(`${base}/console/#/plugins`);
  await page.waitForSelector("tr[data-plugin=order-status]");
  const { plugins } = await api("/v1/plugins");
  assert.equal(await page.locator("table.plugins tbody tr").count(), plugins.length);
  for (const p of plugins) {
    const exits = await page.locator(`tr[data-plugin="${p.id}"] td.exits`).textContent();
    assert.equal(exits, p.exits.map((e) => e.id).join(", "), `exits of ${p.id}`);
    assert.match(await page.locator(`tr[data-plugin="${p.id}"] td.cache`).textContent(), /cache|compiled/);
  }
  writeFileSync(join(process.env.PLUGINS_DIR, "broken.wasm"), "this is not a component");
  await page.waitForFunction(
    () => document.querySelector("#failed-files")?.textContent.includes("broken.wasm") &&
      document.querySelector("#reloads")?.textContent.includes("broken.wasm"),
    null,
    { timeout: 20_000 },
  );
  await page.screenshot({ path: join(shots, "plugins.png"), fullPage: true });

  step("a flow of 100 elements");
  const elements = Array.from({ length: 100 }, (_, i) =>
    i === 99
      ? { id: "e99", type: "exit" }
      : i % 10 === 5
        ? {
            id: `e${i}`,
            type: "branch",
            config: { conditions: [{ exit: "gold", all: [{ attribute: "tier", op: "equals", value: "gold" }] }] },
            exits: { gold: `e${i + 1}`, otherwise: `e${Math.min(i + 2, 99)}` },
          }
        : { id: `e${i}`, type: "set-variable", config: { set: { [`v${i}`]: i } }, exits: { next: `e${i + 1}` } },
  );
  await api("/v1/flows", {
    method: "POST",
    body: JSON.stringify({ id: "hundred", name: "A hundred elements", status: "active", entry_points: [{ type: "api", start: "e0" }], elements }),
  });
  const started = Date.now();
  await page.goto(`${base}/console/#/flows/hundred`);
  await page.waitForFunction(() => document.querySelectorAll("g.node").length === 100);
  console.log(`console test: 100 elements drawn in ${Date.now() - started} ms (navigation included)`);
  await page.hover("g.node[data-element=e55]");
  await page.waitForFunction(() => document.querySelector("#element-tip h2")?.textContent === "e55");

  step("counts refresh while the page is open");
  const entered = () => page.locator("g.node[data-element=e0] .counts .n").first().textContent();
  assert.equal(await entered(), "0");
  await api("/v1/flows/hundred/participants", {
    method: "POST",
    body: JSON.stringify({ participants: [{ contact: "+385911112222" }] }),
  });
  await page.waitForFunction(
    () => document.querySelector("g.node[data-element=e99] .counts .n")?.textContent === "1",
    null,
    { timeout: 10_000 },
  );
  assert.equal(await entered(), "1");

  step("an earlier version of a flow is selectable");
  elements[0].config.set.v0 = "changed";
  const v2 = await api("/v1/flows", {
    method: "POST",
    body: JSON.stringify({ id: "hundred", name: "A hundred elements", status: "active", entry_points: [{ type: "api", start: "e0" }], elements }),
  });
  assert.equal(v2.version, 2);
  await page.goto(`${base}/console/#/flows`);
  await page.goto(`${base}/console/#/flows/hundred`);
  await page.waitForFunction(() => document.querySelectorAll("#flow-version option").length === 2);
  assert.equal(await page.inputValue("#flow-version"), "2");
  const asked = page.waitForRequest((r) => r.url().includes("/v1/flows/hundred/analytics?version=1"));
  await page.selectOption("#flow-version", "1");
  await asked;
  assert.match(page.url(), /#\/flows\/hundred\?version=1$/);
  await page.waitForFunction(() => document.querySelectorAll("g.node").length === 100);

  step("the key never appears in a URL");
  assert.deepEqual(urls.filter((u) => u.includes(key)), []);
  assert.deepEqual(consoleErrors.filter((e) => !e.includes("401")), [], "no script errors");
} finally {
  await browser.close();
}
console.log("console test: passed");
