// Two users in two browser contexts chat through the real gateway binary.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { startGateway, launchBrowser, registerIn } from "../lib.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const repo = join(here, "..", "..", "..");
const screenshot = process.env.AURORA_SCREENSHOT || join(repo, "docs", "screenshot.png");

let gateway;
let base;
let browser;

before(async () => {
  gateway = await startGateway();
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
}

const suffix = String(Date.now() % 100000);

test("two users chat, see each other online, and see the leave", async () => {
  const ctxA = await browser.newContext({ viewport: { width: 1100, height: 640 } });
  const ctxB = await browser.newContext({ viewport: { width: 1100, height: 640 } });
  const alice = await registerIn(ctxA, base, "alice" + suffix);
  const bob = await registerIn(ctxB, base, "bob" + suffix);

  // Each sees the other in the online list.
  await alice.waitForSelector(`#member-list li:text-is("bob${suffix}")`);
  await bob.waitForSelector(`#member-list li:text-is("alice${suffix}")`);

  await say(alice, "Hello Bob, welcome to AuroraChat!");
  // Alice's own message shows at once and is confirmed by the ack.
  await alice.waitForSelector('#message-list li.mine:not(.pending) >> text=Hello Bob');
  await bob.waitForSelector('#message-list li >> text=Hello Bob, welcome to AuroraChat!');

  // Typing indicator.
  await bob.type("#composer-input", "H");
  await alice.waitForSelector(`#typing:has-text("bob${suffix} is typing")`);
  await say(bob, "Hi Alice! <b>not bold</b> & <script>alert(1)</script>");
  await alice.waitForSelector('#message-list li >> text=Hi Alice!');
  // User text is rendered as text, never as HTML.
  assert.equal(await alice.locator("#message-list b, #message-list script").count(), 0);
  const shown = await alice.locator("#message-list li:not(.mine) .body").last().textContent();
  assert.equal(shown, "Hi Alice! <b>not bold</b> & <script>alert(1)</script>");

  // Both see the same messages in the same order.
  const order = async (page) => page.locator("#message-list li[data-seq]").evaluateAll(
    (els) => els.map((e) => e.dataset.seq + ":" + e.querySelector(".body").textContent));
  await bob.waitForFunction(() => document.querySelectorAll("#message-list li[data-seq]").length === 2);
  assert.deepEqual(await order(alice), await order(bob));

  await say(alice, "Great, the ordering matches on both sides.");
  await bob.waitForSelector("#message-list li >> text=the ordering matches");
  await alice.waitForSelector('#message-list li.mine:not(.pending) >> text=the ordering matches');
  // The room list shows the online count.
  await alice.waitForSelector('#room-list button[data-room="general"] .count:text-is("2 online")');
  mkdirSync(dirname(screenshot), { recursive: true });
  await alice.screenshot({ path: screenshot });

  // Bob closes his browser; Alice sees him leave.
  await ctxB.close();
  await alice.waitForSelector(`#member-list li:text-is("bob${suffix}")`, { state: "detached" });
  await alice.waitForSelector('#room-list button[data-room="general"] .count:text-is("1 online")');
  await ctxA.close();
});

test("a reload keeps the session and resumes the room with its history", async () => {
  const ctx = await browser.newContext();
  const carol = await registerIn(ctx, base, "carol" + suffix);
  await say(carol, "message before reload");
  await carol.waitForSelector('#message-list li.mine:not(.pending) >> text=message before reload');
  await carol.reload();
  await carol.waitForSelector("#conn-status.online");
  await carol.waitForSelector("#message-list li >> text=message before reload");
  // Rate limit notice: 10 messages per 10 s by default.
  for (let i = 0; i < 11; i++) await say(carol, "burst " + i);
  await carol.waitForSelector('#notice:not([hidden]):has-text("Slow down")');
  await ctx.close();
});
