// A direct conversation in the web client: two users open it ("New message to…"), reply,
// edit, react and delete; both screens match.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { gatewayAndBrowser, registerIn } from "../lib.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const screenshot = join(here, "..", "..", "..", "docs", "conversations.png");

const shared = gatewayAndBrowser({ AURORA_RATE_LIMIT: "100/10s" });

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
  const ctxA = await shared.browser.newContext({ viewport: { width: 1100, height: 640 } });
  const ctxB = await shared.browser.newContext({ viewport: { width: 1100, height: 640 } });
  const alice = await registerIn(ctxA, shared.gateway.base, "alice" + suffix);
  const bob = await registerIn(ctxB, shared.gateway.base, "bob" + suffix);
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

test("a conversation appears live, a member leaves a group one, and blocking stops the other's messages", async () => {
  const suffix = String(Date.now() % 100000);
  const [ctxA, ctxB, ctxC] = await Promise.all([1, 2, 3].map(() => shared.browser.newContext()));
  const alice = await registerIn(ctxA, shared.gateway.base, "amy" + suffix);
  const bob = await registerIn(ctxB, shared.gateway.base, "ben" + suffix);
  const carol = await registerIn(ctxC, shared.gateway.base, "cal" + suffix);
  for (const page of [alice, bob, carol]) {
    page.on("dialog", (d) => d.accept());
    await page.waitForSelector("#conn-status.online");
  }

  // Amy opens a group conversation: it shows in Ben's and Cal's lists at once (not at the
  // next 15 s list refresh).
  await openDm(alice, `ben${suffix}, cal${suffix}`);
  const group = await alice.locator("#room-list button.active").getAttribute("data-room");
  const live = { timeout: 5000 };
  await bob.waitForSelector(`#room-list button[data-room="${group}"]`, live);
  await carol.waitForSelector(`#room-list button[data-room="${group}"]`, live);
  await carol.locator(`#room-list button[data-room="${group}"]`).click();
  await carol.waitForSelector("#composer-input:not([disabled])");
  assert.equal(await carol.locator("#block-btn").isHidden(), true, "no block button in a group");

  // Cal leaves it: it goes from her list, and Ben sees it titled without her.
  await carol.getByRole("button", { name: "Leave conversation" }).click();
  await carol.waitForSelector(`#room-list button[data-room="${group}"]`, { state: "detached" });
  await bob.waitForSelector(`#room-list button[data-room="${group}"] >> text=@ amy${suffix}`, live);

  // Ben blocks Amy in their conversation of two: her messages are refused, then allowed again.
  await openDm(bob, "amy" + suffix);
  const pair = await bob.locator("#room-list button.active").getAttribute("data-room");
  await alice.locator(`#room-list button[data-room="${pair}"]`).click();
  await alice.waitForSelector("#composer-input:not([disabled])");
  await bob.getByRole("button", { name: "Block amy" + suffix }).click();
  await bob.waitForSelector(`#block-btn[aria-pressed="true"] >> text=Unblock amy${suffix}`);
  await say(alice, "can you hear me?");
  await alice.waitForSelector("#notice:not([hidden]) >> text=you cannot send to this conversation");
  await alice.waitForSelector("#message-list li.failed");
  await bob.getByRole("button", { name: "Unblock amy" + suffix }).click();
  await bob.waitForSelector(`#block-btn[aria-pressed="false"]`);
  await say(alice, "and now?");
  await bob.waitForSelector("#message-list li[data-seq] >> text=and now?");
  assert.equal(await bob.locator("#message-list li[data-seq] >> text=can you hear me?").count(), 0);
  // The choice survives a reload.
  await bob.getByRole("button", { name: "Block amy" + suffix }).click();
  await bob.reload();
  await bob.locator(`#room-list button[data-room="${pair}"]`).click();
  await bob.waitForSelector(`#block-btn[aria-pressed="true"]`);
  await Promise.all([ctxA.close(), ctxB.close(), ctxC.close()]);
});
