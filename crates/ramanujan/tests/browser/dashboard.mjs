// Drives the dashboard of a live host in Debian's headless Chromium with
// playwright-core (pinned in package-lock.json). Run by ../dashboard_browser.rs:
//
//   node dashboard.mjs submit <base url> <screenshot.png>
//     the page shows 9 agents, follows a submission until every agent holds it
//     and it is settled, draws an 81-cell heatmap, opens the inspector from the
//     keyboard, logs no console error; then bad input (an expression that does
//     not parse, an unknown agent, a broken event stream) gets a clear message.
//   node dashboard.mjs keys <base url> <read key> <write key>
//     against a host with API_KEYS: the page asks for a key; a read key shows
//     the live network but may not submit (the host's reason is shown); a wrong
//     key is refused with the host's reason; a write key submits; the key stays
//     for the tab across a reload and never appears in a URL.
//   node dashboard.mjs hold <base url>
//     keeps the page open until standard input closes (the cost benchmark).
//   node dashboard.mjs lifecycle <base url> <agent>
//     prints "ready" once the page shows every agent alive, then (while the test
//     stops <agent>) sees that agent marked suspect, then dead.
import { chromium } from 'playwright-core';

const [mode, base, arg, arg2] = process.argv.slice(2);
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';

function check(condition, message) {
  if (!condition) throw new Error(message);
}

const browser = await chromium.launch({
  executablePath,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'],
});
const problems = [];
async function open(viewport = { width: 1400, height: 1100 }) {
  const page = await browser.newPage({ viewport });
  page.on('console', (m) => { if (m.type() === 'error') problems.push(`console: ${m.text()}`); });
  page.on('pageerror', (e) => problems.push(`uncaught: ${e.message}`));
  return page;
}

try {
  if (mode === 'submit') {
    const page = await open();
    await page.goto(`${base}/dashboard`);
    await page.waitForFunction(() => document.querySelectorAll('#network g.agent[data-lifecycle="alive"]').length === 9,
      null, { timeout: 30000 });
    check(await page.getAttribute('#connection', 'data-state') === 'live', 'the page reads the live stream');

    await page.fill('#expression', '(* 0 (+ p q))');
    await page.press('#expression', 'Enter');
    await page.waitForSelector('#submission-status[data-state="settled"]', { timeout: 30000 });
    const status = await page.textContent('#submission-status');
    check(/all 9 agents hold \(\* 0 \(\+ p q\)\) as 0,/.test(status), `settled, as 0, in all 9 agents: ${status}`);
    const holders = await page.$$eval('#forms tbody tr', (rows) => rows.filter((r) => r.cells[1].textContent === 'yes'
      && r.cells[2].textContent === '0').length);
    check(holders === 9, `each of the 9 agents shows the form 0: ${holders}`);
    const rings = await page.$$eval('#network g.agent.holds', (g) => g.length);
    check(rings === 9, `9 agents lit up as holding it: ${rings}`);
    // A submission from another client (not the form) is timed by the host too.
    await page.evaluate(() => fetch('/agents/submit', {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ expression: '(+ (* a b) (* a c))' }),
    }));
    await page.waitForFunction(() => /^2 submissions settled since the host started; over the newest 2: p50 \d+ ms, p95 \d+ ms, p99 \d+ ms/
      .test(document.getElementById('convergence-stats').textContent), null, { timeout: 30000 });

    const memories = await page.$$eval('#agent-sizes tbody tr', (rows) => rows.filter((r) => /^≈ [\d.,]+ (B|KiB|MiB|GiB)$/.test(r.cells[2].textContent)).length);
    check(memories === 9, `each of the 9 agents shows its memory estimate: ${memories}`);
    const cells = await page.$$eval('#heatmap rect.cell', (r) => r.length);
    check(cells === 81, `the heatmap has 81 cells: ${cells}`);
    // Messages flowed during the submission: some cell shows a rate.
    await page.waitForFunction(() => [...document.querySelectorAll('#heatmap rect.cell title')]
      .some((t) => !/: 0 messages\/s$|no messages$/.test(t.textContent)), null, { timeout: 10000 });

    // The inspector, from the keyboard: Tab to agent-3, Enter.
    await page.focus('#network g.agent[data-agent="agent-3"]');
    await page.keyboard.press('Enter');
    await page.waitForSelector('#inspector[data-agent="agent-3"][data-state="shown"]', { timeout: 10000 });
    const inspector = await page.textContent('#inspector');
    check(inspector.includes('messages sent') && inspector.includes('agent-1') && /memory \(estimate\)≈ /.test(inspector), `the inspector shows agent-3: ${inspector}`);
    await page.waitForSelector('#families tbody tr');
    const readings = await page.$$eval('#readings tbody tr', (rows) => rows.map((r) => r.textContent));
    check(readings.some((r) => r.startsWith('skill-verificationagent_consensus_success_rate')),
      `the components' readings include skill-verification's consensus rate: ${readings.join(' | ')}`);
    const events = await page.$$eval('#events tbody tr', (r) => r.length);
    check(events > 0, 'recent timeline events are listed');
    await page.screenshot({ path: arg, fullPage: false });
    check(problems.length === 0, `no console errors or uncaught exceptions: ${problems.join('; ')}`);

    // Bad input: each gets a clear message, never a blank panel or an uncaught exception.
    // (The browser itself logs each 4xx answer as a failed resource: those are expected here.)
    await page.fill('#expression', '(+ 1');
    await page.press('#expression', 'Enter');
    await page.waitForSelector('#submission-status[data-state="error"]');
    const refused = await page.textContent('#submission-status');
    check(/Not submitted: .*expression/.test(refused), `a bad expression is refused with the reason: ${refused}`);

    const lost = await open();
    await lost.goto(`${base}/dashboard#agent=agent-99`);
    await lost.waitForSelector('#inspector[data-state="error"]', { timeout: 10000 });
    const unknown = await lost.textContent('#inspector');
    check(/no agent “agent-99”/.test(unknown), `an unknown agent is named as unknown: ${unknown}`);

    const cut = await open({ width: 390, height: 844 });
    await cut.route('**/api/metrics/stream', (route) => route.abort());
    await cut.goto(`${base}/dashboard`);
    await cut.waitForSelector('#connection[data-state="polling"]', { timeout: 20000 });
    await cut.waitForFunction(() => document.querySelectorAll('#network g.agent').length === 9);
    const summary = await cut.textContent('#summary');
    check(/9 agents/.test(summary), `with the stream broken the page polls and still shows the network: ${summary}`);
    // Readable on a phone: nothing wider than its 390 px screen (wide tables scroll in their own box).
    const overflow = await cut.evaluate(() => [document.documentElement.scrollWidth, [...document.querySelectorAll('body *')]
      .filter((e) => e.getBoundingClientRect().right > 390 + 1 && !e.closest('.scroll')).map((e) => e.id || e.tagName).slice(0, 5)]);
    check(overflow[0] <= 390, `the page fits a 390 px phone screen: ${overflow[0]} px wide (${overflow[1].join(', ')})`);
    const unexpected = problems.filter((p) => !/^console: Failed to load resource/.test(p));
    check(unexpected.length === 0, `only the refused requests were logged: ${unexpected.join('; ')}`);
    console.log('ok');
  } else if (mode === 'lifecycle') {
    const page = await open();
    await page.goto(`${base}/dashboard`);
    const agent = arg;
    await page.waitForFunction(() => document.querySelectorAll('#network g.agent[data-lifecycle="alive"]').length === 9,
      null, { timeout: 30000 });
    await page.evaluate((id) => {
      const g = document.querySelector(`#network g.agent[data-agent="${id}"]`);
      window.seen = [g.dataset.lifecycle];
      new MutationObserver(() => {
        const now = g.dataset.lifecycle;
        if (window.seen[window.seen.length - 1] !== now) window.seen.push(now);
      }).observe(g, { attributes: true, attributeFilter: ['data-lifecycle'] });
    }, agent);
    console.log('ready');
    await page.waitForSelector(`#network g.agent[data-agent="${agent}"][data-lifecycle="dead"]`, { timeout: 60000 });
    const seen = await page.evaluate(() => window.seen);
    const suspect = seen.indexOf('suspect');
    check(suspect >= 0 && suspect < seen.indexOf('dead'), `${agent} shown suspect, then dead: ${seen.join(' → ')}`);
    const mark = await page.textContent(`#network g.agent[data-agent="${agent}"] text.mark`);
    const label = await page.getAttribute(`#network g.agent[data-agent="${agent}"]`, 'aria-label');
    check(mark === '✕' && label.includes('dead'), `dead is shown by more than colour: mark ${mark}, label ${label}`);
    check(/1 dead/.test(await page.textContent('#summary')), 'the summary counts it dead');
    check(problems.length === 0, `no console errors or uncaught exceptions: ${problems.join('; ')}`);
    console.log('ok');
  } else if (mode === 'keys') {
    const [readKey, writeKey] = [arg, arg2];
    const urls = [];
    const page = await open();
    page.on('request', (r) => urls.push(r.url()));
    const live = async () => {
      await page.waitForSelector('#connection[data-state="live"]', { timeout: 30000 });
      await page.waitForFunction(() => document.querySelectorAll('#network g.agent[data-lifecycle="alive"]').length === 9,
        null, { timeout: 30000 });
    };
    const useKey = async (key) => {
      await page.fill('#api-key', key);
      await page.press('#api-key', 'Enter');
    };
    await page.goto(`${base}/dashboard`);
    await page.waitForSelector('#key-form:not([hidden])', { timeout: 20000 });
    check(await page.getAttribute('#connection', 'data-state') === 'key needed', 'the badge says a key is needed');
    const asked = await page.textContent('#key-note');
    check(/asks for an API key: .*Bearer/.test(asked), `the page says why it asks: ${asked}`);
    check(await page.$$eval('#network g.agent', (g) => g.length) === 0, 'nothing of the network is shown without a key');

    await useKey(readKey);
    await live();
    check(await page.isHidden('#key-form') && await page.isVisible('#forget-key'), 'with a key held, the form goes and "forget" shows');
    await page.fill('#expression', '(* 0 (+ p q))');
    await page.press('#expression', 'Enter');
    await page.waitForSelector('#submission-status[data-state="error"]', { timeout: 10000 });
    const refused = await page.textContent('#submission-status');
    check(/scope `read`.*needs `write`/.test(refused), `a read key may not submit, and the page says why: ${refused}`);
    await page.selectOption('#agent-select', 'agent-2');
    await page.waitForSelector('#inspector[data-agent="agent-2"][data-state="shown"]', { timeout: 10000 });

    // Forgetting the key asks again; a key the host does not know is refused.
    await Promise.all([page.waitForNavigation(), page.click('#forget-key')]);
    await page.waitForSelector('#key-form:not([hidden])', { timeout: 20000 });
    await useKey('not-a-key-this-host-knows');
    await page.waitForFunction(() => /refused the key this page holds: the bearer key is not one this host accepts/
      .test(document.getElementById('key-note').textContent) && !document.getElementById('key-form').hidden, null, { timeout: 20000 });

    await useKey(writeKey);
    await live();
    await page.fill('#expression', '(* 0 (+ p q))');
    await page.press('#expression', 'Enter');
    await page.waitForSelector('#submission-status[data-state="settled"]', { timeout: 30000 });

    // The key stays with the tab: a reload is live without asking.
    await page.reload();
    await live();
    check(await page.isHidden('#key-form'), 'a reload does not ask again');
    const leaked = urls.filter((u) => u.includes(readKey) || u.includes(writeKey) || u.includes('not-a-key'));
    check(leaked.length === 0, `no key in any URL: ${leaked.join(', ')}`);
    const unexpected = problems.filter((p) => !/^console: Failed to load resource/.test(p));
    check(unexpected.length === 0, `only the refused requests were logged: ${unexpected.join('; ')}`);
    console.log('ok');
  } else if (mode === 'hold') {
    // Keeps the page open (for the cost benchmark) until standard input closes.
    const page = await open();
    await page.goto(`${base}/dashboard`);
    await page.waitForSelector('#connection[data-state="live"]', { timeout: 30000 });
    console.log('ready');
    await new Promise((resolve) => { process.stdin.on('end', resolve); process.stdin.on('close', resolve); process.stdin.resume(); });
  } else {
    throw new Error(`unknown mode ${mode}`);
  }
} finally {
  await browser.close();
}
