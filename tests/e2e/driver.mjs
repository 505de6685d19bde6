// Drives Debian's headless chromium with playwright-core through the scenarios in a JSON file and
// prints one line "RESULT {json}" per scenario. Usage: node driver.mjs scenarios.json
//
// scenarios.json: {"chromium": "/usr/bin/chromium", "pageUrl": "http://127.0.0.1:P/page.html",
//   "scenarios": [{"name", "player": "dashjs|hlsjs|shaka", "manifestUrl", "playSeconds",
//                  "timeoutSeconds", "throttle": {"latencyMs", "downloadKbps", "atSeconds", "liftAtSeconds"}?,
//                  "kill": {"atSeconds", "url"}?}]}
// A result is the page's `state` plus, for a kill, the media hosts used and the stalls seen from then on.
// All players run in ONE browser, a fresh context (profile state) per scenario.
import { readFileSync } from "node:fs";
import { chromium } from "playwright-core";

// Flags from ../shared/PLAYER_NOTES.md: the machines have no internet, so stop chromium's
// background traffic; autoplay without a gesture so the players can start.
const FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
  "--autoplay-policy=no-user-gesture-required"];

const config = JSON.parse(readFileSync(process.argv[2], "utf8"));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function throttle(cdp, t) {
  await cdp.send("Network.emulateNetworkConditions", {
    offline: false, latency: t ? t.latencyMs : 0,
    downloadThroughput: t ? (t.downloadKbps * 1000) / 8 : -1, uploadThroughput: -1,
  });
}

async function run(browser, s) {
  const context = await browser.newContext();
  const page = await context.newPage();
  const consoleErrors = [];
  page.on("console", (m) => { if (m.type() === "error") consoleErrors.push(m.text().slice(0, 300)); });
  const cdp = await context.newCDPSession(page);
  await cdp.send("Network.enable");
  await page.goto(config.pageUrl);
  // Throttle phase: from currentTime >= throttle.atSeconds until currentTime >= throttle.liftAtSeconds.
  let phase = s.throttle ? "before" : "none", killedAtMs = null, waitingAtKill = 0, errorSince = null, st = null;
  if (phase === "before" && !s.throttle.atSeconds) {
    await throttle(cdp, s.throttle);
    phase = "on";
  }
  await page.evaluate(([p, u]) => window.startPlayer(p, u), [s.player, s.manifestUrl]);
  const deadline = Date.now() + (s.timeoutSeconds || 60) * 1000;
  while (Date.now() < deadline) {
    st = await page.evaluate(() => window.state);
    if (phase === "before" && st.currentTime >= s.throttle.atSeconds) {
      await throttle(cdp, s.throttle);
      phase = "on";
    }
    if (phase === "on" && st.currentTime >= s.throttle.liftAtSeconds) {
      await throttle(cdp, null);
      phase = "lifted";
    }
    if (s.kill && killedAtMs === null && st.currentTime >= s.kill.atSeconds) {
      killedAtMs = await page.evaluate(() => performance.now());
      waitingAtKill = st.waiting;
      await fetch(s.kill.url, { method: "POST" });
    }
    if (st.errors.length) {
      errorSince = errorSince || Date.now();
      if (Date.now() - errorSince > 2000) break;
    }
    if (st.currentTime >= s.playSeconds || st.ended) break;
    await sleep(200);
  }
  const hostsAfterKill = killedAtMs === null ? null : await page.evaluate((t) => window.mediaHosts(t), killedAtMs);
  // "waiting" events (the buffer ran dry) from the kill on: a failover without a stall has none.
  const stallsAfterKill = killedAtMs === null ? null : st.waiting - waitingAtKill;
  await context.close();
  return { name: s.name, player: s.player, ...st, hostsAfterKill, stallsAfterKill,
           consoleErrors: consoleErrors.slice(0, 5), timedOut: Date.now() >= deadline };
}

// launch() gives every run a fresh temporary profile (user-data dir), removed on close.
const browser = await chromium.launch({ executablePath: config.chromium || "/usr/bin/chromium", args: FLAGS,
  headless: true });
try {
  for (const s of config.scenarios) {
    let result;
    try {
      result = await run(browser, s);
    } catch (e) {
      result = { name: s.name, player: s.player, errors: ["driver: " + e.message] };
    }
    process.stdout.write("RESULT " + JSON.stringify(result) + "\n");
  }
} finally {
  await browser.close();
}
