// The chat as a person opens it: Chromium resolves the ingress host name to the node's
// ingress controller, two users register, chat, and one reloads the page and is still
// signed in. Prints one JSON line: every access token and ticket the pages received (so
// the caller can look for them in the controller's and the gateways' logs), every
// WebSocket URL, and how long the steps took.
//   node dev/e2e/ingress.mjs http://127.0.0.1:18088 chat.aurora.test
import { launchBrowser, signUp } from "./lib.mjs";

const [ingress, host] = process.argv.slice(2);
if (!ingress || !host) {
  console.error("usage: node ingress.mjs INGRESS_URL HOST");
  process.exit(2);
}
const port = new URL(ingress).port;
const base = `http://${host}:${port}`;
const started = Date.now();
const tokens = [];
const tickets = [];
const sockets = [];

// The client opens the first room it lists; the other tests' rooms may come first.
async function openGeneral(page) {
  const general = '#room-list button[data-room="general"]';
  await page.waitForSelector(general, { timeout: 10000 });
  await page.click(general);
  await page.waitForSelector(`${general}.active`, { timeout: 10000 });
  await page.waitForSelector("#composer-input:not([disabled])");
}

const browser = await launchBrowser([`--host-resolver-rules=MAP ${host} 127.0.0.1`]);
try {
  const watch = async (ctx) => {
    ctx.on("response", async (r) => {
      if (/\/api\/auth\/(register|login|refresh)$/.test(r.url()) && r.ok()) {
        tokens.push((await r.json()).token);
      }
      if (r.url().endsWith("/api/ws-ticket") && r.ok()) tickets.push((await r.json()).ticket);
    });
    ctx.on("page", (p) => p.on("websocket", (ws) => sockets.push(ws.url())));
    return ctx;
  };
  const suffix = String(Date.now() % 1000000);
  const alice = await signUp(await watch(await browser.newContext()), base, "ia" + suffix);
  const bob = await signUp(await watch(await browser.newContext()), base, "ib" + suffix);
  for (const page of [alice, bob]) await openGeneral(page);
  const text = `hello through the ingress ${suffix}`;
  await alice.fill("#composer-input", text);
  await alice.press("#composer-input", "Enter");
  await bob.waitForSelector(`#message-list li >> text=${text}`, { timeout: 10000 });
  const chatted = Date.now() - started;

  // A reload: still signed in (the refresh cookie, through the ingress), history back.
  await alice.reload();
  await alice.waitForSelector("#conn-status.online", { timeout: 10000 });
  await openGeneral(alice);
  await alice.waitForSelector(`#message-list li >> text=${text}`, { timeout: 10000 });
  const name = await alice.textContent("#me-name");
  if (name !== "ia" + suffix) throw new Error(`signed in as ${name} after the reload`);
  console.log(JSON.stringify({ base, chatted_ms: chatted, total_ms: Date.now() - started, tokens, tickets, sockets }));
} finally {
  await browser.close();
}
