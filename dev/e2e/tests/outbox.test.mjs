// A user typing faster than the rate limit: every member sees the messages in exactly
// the typed order, once each, nothing lost (the web client's ordered outbox).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startGateway, launchBrowser, registerIn } from "../lib.mjs";

const COUNT = 60;
let gateway, base, browser;

before(async () => {
  gateway = await startGateway({ AURORA_RATE_LIMIT: "5/1s" });
  base = gateway.base;
  browser = await launchBrowser();
});

after(async () => {
  if (browser) await browser.close();
  if (gateway) gateway.stop();
});

const register = async (name) => registerIn(await browser.newContext(), base, name);

const bodies = async (page) => page.locator("#message-list li[data-seq] .body").allTextContents();

test("messages typed faster than the rate limit arrive in typed order, once each", async () => {
  const suffix = String(Date.now() % 100000);
  const writer = await register("writer" + suffix);
  const reader = await register("reader" + suffix);
  const typed = Array.from({ length: COUNT }, (_, i) => "line " + (i + 1));
  for (const text of typed) {
    await writer.fill("#composer-input", text);
    await writer.press("#composer-input", "Enter");
  }
  // The limit pauses the outbox; pending ones show as pending meanwhile.
  await writer.waitForSelector('#notice:not([hidden]):has-text("Slow down")');
  assert.ok(await writer.locator("#message-list li.mine.pending").count() > 0);
  const all = (n) => document.querySelectorAll("#message-list li[data-seq]").length >= n;
  await reader.waitForFunction(all, COUNT, { timeout: 60000 });
  await writer.waitForFunction(all, COUNT, { timeout: 60000 });
  assert.deepEqual(await bodies(reader), typed, "the reader sees the typed order");
  assert.deepEqual(await bodies(writer), typed, "the writer sees the same");
  assert.equal(await writer.locator("#message-list li.mine.pending, #message-list li.failed").count(), 0);
});
