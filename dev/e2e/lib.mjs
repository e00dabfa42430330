// Shared by the browser tests: the real gateway binary and Debian's Chromium.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { before, after } from "node:test";
import { chromium } from "playwright-core";

const chromiumPath = process.env.CHROMIUM_PATH || "/usr/bin/chromium";

// Starts AURORA_BIN on 127.0.0.1:0 with a fresh data dir; resolves to { base, stop, logs }
// (`logs()`: everything the gateway has printed so far).
export function startGateway(env = {}) {
  const binary = process.env.AURORA_BIN;
  if (!binary) throw new Error("AURORA_BIN must point at the gateway binary");
  const dataDir = mkdtempSync(join(tmpdir(), "aurora-e2e-"));
  const gateway = spawn(binary, [], {
    env: { ...process.env, AURORA_LISTEN: "127.0.0.1:0", AURORA_DATA_DIR: dataDir, RUST_LOG: "warn", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let printed = "";
  gateway.stderr.on("data", (chunk) => { printed += chunk; process.stderr.write(chunk); });
  gateway.stdout.on("data", (chunk) => { printed += chunk; });
  const logs = () => printed;
  const stop = () => {
    gateway.removeAllListeners("exit");
    gateway.kill("SIGTERM");
    rmSync(dataDir, { recursive: true, force: true });
  };
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("gateway did not start")), 15000);
    gateway.on("exit", (code) => reject(new Error("gateway exited with " + code)));
    gateway.stdout.on("data", (chunk) => {
      const m = /listening on (http:\/\/\S+)/.exec(chunk.toString());
      if (m) { clearTimeout(timer); resolve({ base: m[1], stop, logs }); }
    });
  });
}

// `extraArgs`: e.g. `--host-resolver-rules=MAP chat.example 127.0.0.1` to reach an ingress by name.
export function launchBrowser(extraArgs = []) {
  return chromium.launch({
    executablePath: chromiumPath,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync", ...extraArgs],
  });
}

// Registers `name` in a new page of `context` and waits until it is connected.
export async function signUp(context, base, name) {
  const page = await context.newPage();
  page.on("pageerror", (e) => { throw e; });
  await page.goto(base + "/");
  await page.fill("#username", name);
  await page.fill("#password", "correct horse battery");
  await page.click("#register-btn");
  await page.waitForSelector("#chat-view:not([hidden])");
  await page.waitForSelector("#conn-status.online");
  return page;
}

// Registers `name` and waits until the chat is usable in `general` (the only room of a fresh gateway).
export async function registerIn(context, base, name) {
  const page = await signUp(context, base, name);
  await page.waitForSelector('#room-list button.active[data-room="general"]');
  await page.waitForSelector("#composer-input:not([disabled])");
  return page;
}

// One gateway (with `env`) and one browser for a test file: started before its tests,
// stopped after. Read `.gateway` and `.browser` inside the tests.
export function gatewayAndBrowser(env = {}) {
  const shared = { gateway: null, browser: null };
  before(async () => {
    shared.gateway = await startGateway(env);
    shared.browser = await launchBrowser();
  });
  after(async () => {
    if (shared.browser) await shared.browser.close();
    if (shared.gateway) shared.gateway.stop();
  });
  return shared;
}
