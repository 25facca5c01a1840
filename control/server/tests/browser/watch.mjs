// Opens the Sluice watch page in headless Chromium, lets it play, and prints what the page
// measured (window.sluiceStats, from RTCPeerConnection.getStats) as one JSON line per sample.
//
// usage: node watch.mjs URL SECONDS SCREENSHOT.png
// env:   CHROMIUM (default /usr/bin/chromium)
import { chromium } from 'playwright-core';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const [url, secondsArg, screenshot] = process.argv.slice(2);
const seconds = Number(secondsArg || 10);
if (!url) {
  console.error('usage: node watch.mjs URL SECONDS SCREENSHOT.png');
  process.exit(2);
}

const userDataDir = mkdtempSync(join(tmpdir(), 'sluice-chromium-'));
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: [
    '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--autoplay-policy=no-user-gesture-required',
    // Host candidates on loopback must not be hidden behind mDNS names.
    '--disable-features=WebRtcHideLocalIpsWithMdns',
  ],
  viewport: { width: 1280, height: 800 },
});
const page = context.pages()[0] || await context.newPage();
page.on('console', (m) => console.error(`[page] ${m.text()}`));
page.on('pageerror', (e) => console.error(`[page error] ${e}`));
await page.goto(url);
for (let i = 0; i < seconds; i++) {
  await page.waitForTimeout(1000);
  const stats = await page.evaluate(() => window.sluiceStats || {});
  console.log(JSON.stringify({ t: i + 1, stats }));
}
if (screenshot) await page.screenshot({ path: screenshot });
await context.close();
