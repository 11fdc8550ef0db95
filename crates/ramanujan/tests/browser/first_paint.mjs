// Times the dashboard's first paint in Debian's headless Chromium, each load in
// a fresh browser context (nothing cached): `node first_paint.mjs <base url> <loads>`.
// Prints one JSON line per load: milliseconds from navigation start to the
// response's end, first contentful paint, the network drawn (9 agents, from
// the first metrics update), and the load event.
import { chromium } from 'playwright-core';

const [base, loads] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'],
});
try {
  for (let i = 0; i < Number(loads); i++) {
    const context = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
    const page = await context.newPage();
    await page.goto(`${base}/dashboard`);
    await page.waitForFunction(() => performance.getEntriesByName('network-drawn').length > 0
      && performance.getEntriesByName('first-contentful-paint').length > 0, null, { timeout: 30000 });
    const times = await page.evaluate(() => {
      const nav = performance.getEntriesByType('navigation')[0];
      return {
        response_end: nav.responseEnd,
        first_contentful_paint: performance.getEntriesByName('first-contentful-paint')[0].startTime,
        network_drawn: performance.getEntriesByName('network-drawn')[0].startTime,
        load: nav.loadEventEnd,
        transferred_bytes: performance.getEntriesByType('resource').reduce((n, r) => n + r.transferSize, nav.transferSize),
      };
    });
    console.log(JSON.stringify(times));
    await context.close();
  }
} finally {
  await browser.close();
}
