// A platform's backend posts through the server API as a bot: members see it live, marked
// as a bot, in order with their own messages.
import { test } from "node:test";
import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gatewayAndBrowser, registerIn } from "../lib.mjs";

const key = "ak_" + randomBytes(32).toString("base64url");
const dir = mkdtempSync(join(tmpdir(), "aurora-keys-"));
const keyFile = join(dir, "keys.yaml");
const hash = createHash("sha256").update(key).digest("hex");
writeFileSync(keyFile, `keys:\n- name: deploys\n  bot: Deploy Bot\n  scopes: [publish]\n  hashes: [${hash}]\n`);
const shared = gatewayAndBrowser({ AURORA_API_KEYS_FILE: keyFile });

test("a bot's message arrives live and is marked as a bot", async () => {
  const ctx = await shared.browser.newContext();
  const page = await registerIn(ctx, shared.gateway.base, "viv" + String(Date.now() % 100000));
  await page.waitForSelector("#composer-input:not([disabled])");
  await page.fill("#composer-input", "is the deploy done?");
  await page.press("#composer-input", "Enter");
  await page.waitForSelector("#message-list li[data-seq] >> text=is the deploy done?");
  const r = await fetch(shared.gateway.base + "/api/server/rooms/general/messages", {
    method: "POST",
    headers: { authorization: "Bearer " + key, "content-type": "application/json" },
    body: JSON.stringify({ body: "v42 is live", nonce: "deploy-42" }),
  });
  if (r.status !== 201) throw new Error("publish: " + r.status + " " + (await r.text()));
  await page.waitForSelector("#message-list li.from-bot:has(.bot-tag) >> text=v42 is live");
  await page.waitForSelector("#message-list li.from-bot .author >> text=Deploy Bot");
  await ctx.close();
});
