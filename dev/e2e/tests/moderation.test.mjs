// Moderation in the web client: the owner of a room removes a member's message, mutes and
// kicks them; the member sees who removed it, that they are muted (and cannot send), and why
// they left; every action shows in the room as a notice.
import { test } from "node:test";
import assert from "node:assert/strict";
import { gatewayAndBrowser, registerIn } from "../lib.mjs";

const shared = gatewayAndBrowser({ AURORA_RATE_LIMIT: "100/10s" });

test("the owner removes a member's message, mutes and kicks them; the member is told", async () => {
  const suffix = String(Date.now() % 100000);
  const [ctxA, ctxB] = await Promise.all([shared.browser.newContext(), shared.browser.newContext()]);
  const owner = await registerIn(ctxA, shared.gateway.base, "ola" + suffix);
  const member = await registerIn(ctxB, shared.gateway.base, "max" + suffix);
  for (const page of [owner, member]) page.on("dialog", (d) => d.accept());
  const room = "mods" + suffix;
  await owner.fill("#new-room-name", room);
  await owner.press("#new-room-name", "Enter");
  await owner.waitForSelector(`#room-list button.active[data-room="${room}"]`);
  await member.reload();
  await member.locator(`#room-list button[data-room="${room}"]`).click();
  await member.waitForSelector("#composer-input:not([disabled])");

  await member.fill("#composer-input", "buy cheap watches");
  await member.press("#composer-input", "Enter");
  const row = owner.locator("#message-list li[data-seq]", { hasText: "buy cheap watches" });
  await row.getByRole("button", { name: `Remove max${suffix}'s message` }).click();
  await member.waitForSelector(`#message-list li.deleted >> text=message removed by ola${suffix}`);
  // Members are offered no such button.
  assert.equal(await member.getByRole("button", { name: /^Remove / }).count(), 0);

  await owner.getByRole("button", { name: `Mute 10 min max${suffix}` }).click();
  await member.waitForSelector(`#message-list li.notice-line >> text=ola${suffix} muted you until`);
  await owner.waitForSelector(`#message-list li.notice-line >> text=ola${suffix} muted max${suffix} until`);
  await member.fill("#composer-input", "let me speak");
  await member.press("#composer-input", "Enter");
  await member.waitForSelector("#notice:not([hidden]) >> text=you are muted in this room for another");
  await member.waitForSelector("#message-list li.failed >> text=let me speak");
  assert.equal(await owner.locator("#message-list li", { hasText: "let me speak" }).count(), 0);

  await owner.getByRole("button", { name: `Kick max${suffix}` }).click();
  await member.waitForSelector(`#notice:not([hidden]) >> text=A moderator removed you from # ${room}`);
  await owner.waitForSelector(`#message-list li.notice-line >> text=ola${suffix} removed max${suffix} from the room`);
  await Promise.all([ctxA.close(), ctxB.close()]);
});
