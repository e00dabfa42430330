// The web client served by an installed gateway (the Helm chart's pods): two users
// register in Chromium, open a ChatRoom room and exchange a message.
//   node dev/e2e/installed.mjs http://127.0.0.1:18080 ROOM
// Exits non-zero, with the failing step, otherwise.
import { launchBrowser, signUp } from "./lib.mjs";

const [base, room] = process.argv.slice(2);
if (!base || !room) {
  console.error("usage: node installed.mjs BASE_URL ROOM");
  process.exit(2);
}

async function openRoom(page) {
  const button = `#room-list button[data-room="${room}"]`;
  await page.waitForSelector(button, { timeout: 10000 });
  await page.click(button);
  await page.waitForSelector(`${button}.active`, { timeout: 10000 });
  await page.waitForSelector("#composer-input:not([disabled])");
}

const browser = await launchBrowser();
try {
  const suffix = String(Date.now() % 1000000);
  // The client opens whichever room it lists first; the test then opens the ChatRoom.
  const alice = await signUp(await browser.newContext(), base, "ia" + suffix);
  const bob = await signUp(await browser.newContext(), base, "ib" + suffix);
  await openRoom(alice);
  await openRoom(bob);
  const text = `hello from the installed chart ${suffix}`;
  await alice.fill("#composer-input", text);
  await alice.press("#composer-input", "Enter");
  await alice.waitForSelector(`#message-list li.mine:not(.pending) >> text=${text}`, { timeout: 10000 });
  await bob.waitForSelector(`#message-list li >> text=${text}`, { timeout: 10000 });
  console.log(`ok: the browser client at ${base} chatted in ${room}`);
} finally {
  await browser.close();
}
