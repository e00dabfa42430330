// Sessions in the browser: 5 s access tokens renewed from the HttpOnly refresh cookie, a
// reload that stays signed in, WebSockets opened with tickets (no token in any URL or
// log line), and a logout that sticks.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startGateway, launchBrowser, registerIn } from "../lib.mjs";

let gateway, base, browser;

before(async () => {
  gateway = await startGateway({ AURORA_JWT_TTL: "5s", RUST_LOG: "info" });
  base = gateway.base;
  browser = await launchBrowser();
});

after(async () => {
  if (browser) await browser.close();
  if (gateway) gateway.stop();
});

async function say(page, text) {
  await page.fill("#composer-input", text);
  await page.press("#composer-input", "Enter");
  await page.waitForSelector(`#message-list li.mine:not(.pending) >> text=${text}`);
}

test("a user stays signed in across token expiries and reloads, until logout", async () => {
  const ctx = await browser.newContext();
  const sockets = [];
  ctx.on("page", (p) => p.on("websocket", (ws) => sockets.push(ws.url())));
  const tokens = [];
  const tickets = [];
  ctx.on("response", async (r) => {
    if (/\/api\/auth\/(refresh|register|login)$/.test(r.url()) && r.ok()) tokens.push((await r.json()).token);
    if (r.url().endsWith("/api/ws-ticket") && r.ok()) tickets.push((await r.json()).ticket);
  });
  const name = "dana" + String(Date.now() % 100000);
  const page = await registerIn(ctx, base, name);
  const scripts = await page.evaluate(() => document.cookie);
  assert.equal(scripts, "", "the refresh cookie is not readable by page scripts");

  // Three access-token lifetimes go by; the page renews in the background and keeps chatting.
  for (let i = 1; i <= 3; i++) {
    await page.waitForResponse((r) => r.url().endsWith("/api/auth/refresh") && r.status() === 200, { timeout: 15000 });
    await say(page, `still here ${i}`);
  }
  assert.equal(await page.locator("#auth-view:not([hidden])").count(), 0, "never sent back to the login form");

  // A reload: signed in again from the cookie, same user, the room's history back.
  await page.reload();
  await page.waitForSelector("#conn-status.online");
  assert.equal(await page.textContent("#me-name"), name);
  await page.waitForSelector("#message-list li >> text=still here 3");

  // Every socket opened with a ticket offered as a subprotocol: no credential in any URL.
  for (const url of sockets) assert.equal(new URL(url).pathname + new URL(url).search, "/ws");
  assert.ok(sockets.length >= 2 && tickets.length >= sockets.length, `${sockets.length} sockets, ${tickets.length} tickets`);
  const logs = gateway.logs();
  assert.match(logs, /signed in|registered/, "the gateway logged at info level");
  for (const t of tokens) assert.ok(!logs.includes(t), "no access token in the gateway's log");
  for (const t of tickets) assert.ok(!logs.includes(t), "no ticket in the gateway's log");

  // Logout ends the session: a reload shows the login form.
  await page.click("#logout-btn");
  await page.waitForSelector("#auth-view:not([hidden])");
  const [refused] = await Promise.all([
    page.waitForResponse((r) => r.url().endsWith("/api/auth/refresh")),
    page.reload(),
  ]);
  assert.equal(refused.status(), 401, "the ended session does not refresh");
  await page.waitForSelector("#auth-view:not([hidden])");
  assert.equal(await page.locator("#chat-view:not([hidden])").count(), 0);
  await ctx.close();
});
