// Open a page in headless Debian chromium and print its `window.ocaPlayerState` as one JSON line
// every 500 ms ("state: {...}"), until killed. The Python test decides what to do with it.
//   node watch_page.mjs URL [--throttle KBPS]
import { chromium } from "playwright-core";

const url = process.argv[2];
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--autoplay-policy=no-user-gesture-required"],
});
const page = await browser.newPage();
page.on("console", (m) => { if (m.type() === "error") console.log("console: " + m.text()); });
page.on("pageerror", (e) => console.log("pageerror: " + e.message));
await page.goto(url);
const stop = async () => { await browser.close().catch(() => {}); process.exit(0); };
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
for (;;) {
  const state = await page.evaluate(() => window.ocaPlayerState || null).catch((e) => ({ evalError: String(e) }));
  console.log("state: " + JSON.stringify(state));
  await new Promise((r) => setTimeout(r, 500));
}
