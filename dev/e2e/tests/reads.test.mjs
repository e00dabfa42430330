// Read state in the web client: unread and mention badges, the "new messages" line, and a
// read on one device clearing the badge on the other.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { gatewayAndBrowser, registerIn } from "../lib.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const screenshot = join(here, "..", "..", "..", "docs", "read-state.png");

const shared = gatewayAndBrowser({ AURORA_RATE_LIMIT: "100/10s" });

async function logIn(context, name) {
  const page = await context.newPage();
  page.on("pageerror", (e) => { throw e; });
  await page.goto(shared.gateway.base + "/");
  await page.fill("#username", name);
  await page.fill("#password", "correct horse battery");
  await page.click("#login-btn");
  await page.waitForSelector("#conn-status.online");
  return page;
}

async function say(page, text) {
  await page.fill("#composer-input", text);
  await page.press("#composer-input", "Enter");
}

const badge = (page, room) => page.locator(`#room-list button[data-room="${room}"] .unread`);

test("badges count unread and mentions, and reading on one device clears the other", async () => {
  const suffix = String(Date.now() % 100000);
  const [ctxA, ctxB1, ctxB2] = await Promise.all([1, 2, 3].map(() => shared.browser.newContext()));
  const alice = await registerIn(ctxA, shared.gateway.base, "ada" + suffix);
  const laptop = await registerIn(ctxB1, shared.gateway.base, "bea" + suffix);
  const phone = await logIn(ctxB2, "bea" + suffix);

  await alice.fill("#new-dm-users", "bea" + suffix);
  await alice.press("#new-dm-users", "Enter");
  await alice.waitForSelector("#room-list button.active[data-room^='dm-']");
  await alice.waitForSelector("#composer-input:not([disabled])");
  const dm = await alice.locator("#room-list button.active").getAttribute("data-room");
  await say(alice, "are you around?");
  await say(alice, `@bea${suffix} need your review`);
  await say(alice, "it is the login page");
  // Both of Bea's devices, still in general, count three, one naming her.
  const live = { timeout: 5000 };
  for (const page of [laptop, phone]) {
    await page.waitForSelector(`#room-list button[data-room="${dm}"] .unread.mention:text-is(" @3")`, live);
  }

  // She reads on the laptop: the line sits above the first unread message, and the phone's
  // badge goes within a second, though the phone never opened the conversation.
  await laptop.locator(`#room-list button[data-room="${dm}"]`).click();
  await laptop.waitForSelector("#message-list li.divider + li[data-seq] >> text=are you around?");
  await laptop.waitForSelector("#message-list li.mention >> text=need your review");
  await badge(phone, dm).waitFor({ state: "detached", timeout: 1500 });
  assert.equal(await badge(laptop, dm).count(), 0);
  // Ada sees it: "Seen by bea…" under the last message Bea read.
  await alice.waitForSelector(`#message-list li[data-seq]:has-text("login page") + li.seen:text-is("Seen by bea${suffix}")`, live);
  mkdirSync(dirname(screenshot), { recursive: true });
  await laptop.screenshot({ path: screenshot });

  // One more while she is on the laptop: the phone counts it, the laptop reads it.
  await say(alice, "thanks!");
  await phone.waitForSelector(`#room-list button[data-room="${dm}"] .unread:text-is(" 1")`, live);
  await laptop.waitForSelector("#message-list li[data-seq] >> text=thanks!");
  await badge(phone, dm).waitFor({ state: "detached", timeout: 2000 });
  await alice.waitForSelector(`#message-list li[data-seq]:has-text("thanks!") + li.seen`, live);
  assert.equal(await alice.locator("#message-list li.seen").count(), 1, "one line, under the last message read");
  // A reload asks the server: nothing unread.
  await phone.reload();
  await phone.waitForSelector("#conn-status.online");
  await phone.waitForSelector(`#room-list button[data-room="${dm}"]`);
  assert.equal(await badge(phone, dm).count(), 0);
  await Promise.all([ctxA.close(), ctxB1.close(), ctxB2.close()]);
});
