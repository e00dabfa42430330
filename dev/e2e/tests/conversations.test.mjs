// A direct conversation in the web client: two users open it ("New message to…"), reply,
// edit, react and delete; both screens match.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { startGateway, launchBrowser, registerIn } from "../lib.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const screenshot = join(here, "..", "..", "..", "docs", "conversations.png");

let gateway;
let browser;

before(async () => {
  gateway = await startGateway({ AURORA_RATE_LIMIT: "100/10s" });
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

// What a user sees of each message: author, quote, body or tombstone, edited mark, reactions.
async function screen(page) {
  return page.locator("#message-list li[data-seq]").evaluateAll((els) => els.map((e) => ({
    seq: e.dataset.seq,
    author: e.querySelector(".author").textContent,
    quote: e.querySelector(".quote")?.textContent ?? null,
    body: e.querySelector(".body").textContent,
    edited: Boolean(e.querySelector(".edited")),
    reactions: [...e.querySelectorAll("button.reaction")].map((b) => b.textContent),
  })));
}

// The message whose own body (not a reply's quote) says `text`.
function row(page, text) {
  return page.locator("#message-list li[data-seq]", { has: page.locator(".body", { hasText: text }) });
}

async function openDm(page, user) {
  await page.fill("#new-dm-users", user);
  await page.press("#new-dm-users", "Enter");
  await page.waitForSelector("#room-list button.active[data-room^='dm-']");
  await page.waitForSelector("#composer-input:not([disabled])");
}

test("two users open a conversation, reply, edit, react and delete; both screens match", async () => {
  const suffix = String(Date.now() % 100000);
  const ctxA = await browser.newContext({ viewport: { width: 1100, height: 640 } });
  const ctxB = await browser.newContext({ viewport: { width: 1100, height: 640 } });
  const alice = await registerIn(ctxA, gateway.base, "alice" + suffix);
  const bob = await registerIn(ctxB, gateway.base, "bob" + suffix);
  alice.on("dialog", (d) => d.accept());

  // Each opens the conversation with the other: the same one, titled by the other's name.
  await openDm(alice, "bob" + suffix);
  await openDm(bob, "alice" + suffix);
  assert.equal(await alice.locator("#room-title").textContent(), "@ bob" + suffix);
  assert.equal(await bob.locator("#room-title").textContent(), "@ alice" + suffix);
  const dm = await alice.locator("#room-list button.active").getAttribute("data-room");
  assert.equal(await bob.locator("#room-list button.active").getAttribute("data-room"), dm);
  assert.match(dm, /^dm-/);

  await say(alice, "Lunch at noon?");
  await bob.waitForSelector("#message-list li[data-seq] >> text=Lunch at noon?");
  // Bob replies: the quote shows above the composer, then in the message.
  await row(bob, "Lunch at noon?").getByRole("button", { name: /^Reply to/ }).click();
  await bob.waitForSelector("#compose-banner:not([hidden]) >> text=Replying to alice" + suffix);
  await say(bob, "Yes, the usual place");
  await alice.waitForSelector(`#message-list li[data-seq] .quote >> text=alice${suffix}: Lunch at noon?`);

  // Alice edits her message with Up in the empty composer.
  await alice.focus("#composer-input");
  await alice.keyboard.press("ArrowUp");
  await alice.waitForSelector("#compose-banner:not([hidden]) >> text=Editing your message");
  await alice.fill("#composer-input", "Lunch at 12:30?");
  await alice.press("#composer-input", "Enter");
  await bob.waitForSelector("#message-list li[data-seq] >> text=Lunch at 12:30?");
  await bob.waitForSelector("#message-list li[data-seq] .edited");
  // Bob's reply quote follows the edit.
  await bob.waitForSelector(`#message-list .quote >> text=alice${suffix}: Lunch at 12:30?`);

  // Reactions: Bob adds 👍 from the picker, Alice adds hers by clicking the count.
  await row(bob, "Lunch at 12:30?").getByRole("button", { name: "Add a reaction" }).click();
  await row(bob, "Lunch at 12:30?").getByRole("button", { name: "React with 👍" }).click();
  await alice.waitForSelector("#message-list button.reaction:text-is('👍 1')");
  await alice.locator("#message-list button.reaction", { hasText: "👍" }).click();
  await bob.waitForSelector("#message-list button.reaction:text-is('👍 2')");
  assert.equal(await alice.locator("#message-list button.reaction").getAttribute("aria-pressed"), "true");

  // Alice writes a third message and deletes it (after confirming).
  await say(alice, "oops, wrong room");
  await bob.waitForSelector("#message-list li[data-seq] >> text=oops, wrong room");
  await row(alice, "oops, wrong room").getByRole("button", { name: "Delete your message" }).click();
  await bob.waitForSelector("#message-list li.deleted >> text=message deleted");
  await alice.waitForSelector("#message-list li.deleted >> text=message deleted");

  // Both screens show the same thing, and so does a reload (history in its current state).
  await bob.waitForFunction(() => document.querySelectorAll("#message-list li[data-seq]").length === 3);
  assert.deepEqual(await screen(alice), await screen(bob));
  const shown = await screen(bob);
  assert.equal(shown[0].body, "Lunch at 12:30?");
  assert.ok(shown[0].edited);
  assert.deepEqual(shown[0].reactions, ["👍 2"]);
  assert.equal(shown[2].body, "message deleted");
  mkdirSync(dirname(screenshot), { recursive: true });
  await bob.screenshot({ path: screenshot });
  await bob.reload();
  await bob.waitForSelector("#conn-status.online");
  await bob.locator(`#room-list button[data-room="${dm}"]`).click();
  await bob.waitForSelector("#message-list li.deleted");
  await bob.waitForFunction(() => document.querySelectorAll("#message-list button.reaction").length === 1);
  assert.deepEqual(await screen(bob), shown);
  await ctxA.close();
  await ctxB.close();
});
