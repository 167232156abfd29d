import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';
import type { BuiltApp } from '../../src/app.js';
import { VERSION } from '../../src/version.js';
import { testApp } from '../helpers/app.js';
import { snapshotOf } from '../../src/http/snapshot.js';

const CHROMIUM = '/usr/bin/chromium';
const skip = existsSync(CHROMIUM) ? false : `${CHROMIUM} is missing (scripts/setup-test-tools.sh installs Debian's chromium)`;
const CHART_IDS = ['gpu-util', 'gpu-mem', 'frag', 'throughput', 'peer-rtt', 'collective'];
const SCREENSHOT = fileURLToPath(new URL('../../docs/landing.png', import.meta.url));

let browser: Browser;

async function serve(argv: string[]): Promise<{ built: BuiltApp; origin: string }> {
  const built = await testApp(argv);
  await built.app.listen({ host: '127.0.0.1', port: 0 });
  built.start();
  return { built, origin: `http://127.0.0.1:${(built.app.server.address() as AddressInfo).port}` };
}

/** Everything the page does that a test must see: requests, console errors, CSP reports. */
function watch(page: Page) {
  const requests: string[] = [];
  const errors: string[] = [];
  page.on('request', (r) => requests.push(r.url()));
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
  });
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  // Runs before any page script and outside the page's CSP.
  void page.addInitScript(() => {
    const w = window as unknown as { cspViolations: string[] };
    w.cspViolations = [];
    document.addEventListener('securitypolicyviolation', (e) => w.cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`));
  });
  return { requests, errors, csp: () => page.evaluate(() => (window as unknown as { cspViolations: string[] }).cspViolations) };
}

/**
 * Per card: how many canvas pixels have one of the colors its legend gives its series.
 * (No named function inside page callbacks: tsx would wrap it in a helper the page lacks.)
 */
function seriesPixels(page: Page): Promise<Record<string, { canvas: boolean; series: number; pixels: number }>> {
  return page.evaluate(() => {
    const out: Record<string, { canvas: boolean; series: number; pixels: number }> = {};
    for (const card of document.querySelectorAll<HTMLElement>('.card')) {
      const canvas = card.querySelector('canvas');
      const colors = [...card.querySelectorAll<HTMLElement>('.u-legend .u-series:not(:first-child) .u-marker')].map((m) => (/rgba?\((\d+), (\d+), (\d+)/.exec(getComputedStyle(m).borderTopColor) ?? []).slice(1, 4).map(Number)).filter((c) => c.length === 3);
      let pixels = 0;
      if (canvas && colors.length) {
        const { data } = canvas.getContext('2d')!.getImageData(0, 0, canvas.width, canvas.height);
        for (let i = 0; i < data.length; i += 4) {
          if (data[i + 3] < 200) continue;
          if (colors.some((c) => Math.abs(c[0] - data[i]) + Math.abs(c[1] - data[i + 1]) + Math.abs(c[2] - data[i + 2]) < 40)) pixels++;
        }
      }
      out[card.dataset.chart!] = { canvas: !!canvas, series: colors.length, pixels };
    }
    return out;
  });
}

const cardState = (page: Page) =>
  page.evaluate(() =>
    Object.fromEntries(
      [...document.querySelectorAll<HTMLElement>('.card')].map((c) => [c.dataset.chart!, { state: c.dataset.state, points: Number(c.dataset.points ?? 0), last: Number(c.dataset.last ?? 0) }]),
    ),
  );

before(async () => {
  if (skip) return;
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    timeout: 60_000,
  });
});
after(async () => {
  await browser?.close();
});

test('the landing page renders, draws every chart from the live snapshot and keeps updating', { skip, timeout: 90_000 }, async () => {
  const { built, origin } = await serve(['--simulate']);
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 }, colorScheme: 'light' });
  const seen = watch(page);
  try {
    const res = await page.goto(`${origin}/`, { waitUntil: 'load' });
    assert.equal(res?.status(), 200);
    const headers = res!.headers();
    assert.match(headers['content-security-policy'], /script-src 'self'/);
    assert.doesNotMatch(headers['content-security-policy'], /unsafe-inline|unsafe-eval|https?:/);
    assert.equal(headers['x-content-type-options'], 'nosniff');
    assert.equal(headers['referrer-policy'], 'no-referrer');
    assert.equal(headers['x-frame-options'], 'DENY');

    assert.match(await page.title(), /^ds-exporter/);
    assert.equal(await page.textContent('#version'), VERSION);
    assert.equal(await page.textContent('#node-version'), process.version);
    assert.equal(await page.textContent('#gpu-source'), 'simulated');
    assert.ok(await page.isVisible('#sim-banner'), 'the simulated-GPU warning is visible');
    for (const href of ['metrics', 'api/v1/snapshot', 'healthz', 'readyz']) assert.equal(await page.locator(`nav a[href="${href}"]`).count(), 1, `link to /${href}`);
    assert.equal(await page.locator('nav a', { hasText: 'docs' }).count(), 1);

    // Every chart gets a canvas with at least two points in time and visibly drawn series.
    await page.waitForFunction(
      (ids) => ids.every((id) => {
        const c = document.getElementById(`chart-${id}`)!;
        return c.dataset.state === 'chart' && Number(c.dataset.points) >= 3 && !!c.querySelector('canvas');
      }),
      CHART_IDS,
      { timeout: 30_000, polling: 250 },
    );
    const drawn = await seriesPixels(page);
    for (const id of CHART_IDS) {
      assert.ok(drawn[id]?.canvas, `${id}: canvas`);
      assert.ok(drawn[id].series > 0, `${id}: legend lists series`);
      assert.ok(drawn[id].pixels > 50, `${id}: series are drawn (${drawn[id].pixels} pixels in series colors)`);
    }
    const gpuSeries = await page.locator('#chart-gpu-util .u-legend .u-series').count();
    assert.equal(gpuSeries - 1, snapshotOf(built.store).metrics.ds_gpu_utilization_ratio.length, 'one utilization series per GPU');
    assert.equal(await page.locator('#collectors li[data-state="ok"]').count(), built.scheduler.collectorNames.length, 'every collector shown as succeeding');
    assert.match((await page.textContent('[data-tile="gpus"] .value')) ?? '', /^\d+$/);
    assert.equal(await page.getAttribute('#live', 'data-state'), 'live');

    // The charts move: more points, a newer last timestamp, different pixels.
    const before = await cardState(page);
    const pixelsBefore = await page.evaluate(() => document.querySelector<HTMLCanvasElement>('#chart-gpu-util canvas')!.toDataURL());
    await page.waitForFunction(
      ({ ids, was }) => ids.every((id) => Number(document.getElementById(`chart-${id}`)!.dataset.points) >= was[id].points + 2),
      { ids: CHART_IDS, was: before },
      { timeout: 20_000, polling: 250 },
    );
    const afterwards = await cardState(page);
    for (const id of CHART_IDS) assert.ok(afterwards[id].last > before[id].last, `${id}: newest point moved on`);
    const pixelsAfter = await page.evaluate(() => document.querySelector<HTMLCanvasElement>('#chart-gpu-util canvas')!.toDataURL());
    assert.notEqual(pixelsAfter, pixelsBefore, 'the utilization chart was redrawn with new data');

    // Everything came from the exporter itself, uPlot included.
    assert.ok(seen.requests.some((u) => u === `${origin}/assets/uplot/uPlot.iife.min.js`), 'uPlot script from the exporter');
    assert.ok(seen.requests.some((u) => u === `${origin}/assets/uplot/uPlot.min.css`), 'uPlot stylesheet from the exporter');
    assert.ok(seen.requests.some((u) => u === `${origin}/api/v1/snapshot`), 'snapshot polled');
    assert.deepEqual(seen.requests.filter((u) => !u.startsWith(`${origin}/`)), [], 'no request leaves the exporter');
    assert.deepEqual(seen.errors, [], 'no console errors');
    assert.deepEqual(await seen.csp(), [], 'no CSP violations');

    const update = process.env.UPDATE_SCREENSHOT === '1' || !existsSync(SCREENSHOT);
    const shot = update ? SCREENSHOT : join(tmpdir(), 'ds-exporter-landing.png');
    await page.screenshot({ path: shot, fullPage: true });
    if (!update) process.stdout.write(`# screenshot written to ${shot} (UPDATE_SCREENSHOT=1 replaces docs/landing.png)\n`);

    // 800 px wide: one column, nothing wider than the window.
    await page.setViewportSize({ width: 800, height: 1000 });
    await page.waitForFunction(() => {
      const c = document.querySelector<HTMLElement>('#chart-gpu-util')!;
      return c.querySelector('.uplot')!.getBoundingClientRect().width <= c.getBoundingClientRect().width;
    }, undefined, { timeout: 10_000 });
    const layout = await page.evaluate(() => ({
      scroll: document.documentElement.scrollWidth,
      lefts: [...new Set([...document.querySelectorAll('.card')].map((c) => Math.round(c.getBoundingClientRect().left)))],
      widest: Math.max(...[...document.querySelectorAll('.uplot')].map((u) => u.getBoundingClientRect().right)),
    }));
    assert.ok(layout.scroll <= 800, `no horizontal scrolling at 800 px (${layout.scroll})`);
    assert.equal(layout.lefts.length, 1, 'charts stack in one column');
    assert.ok(layout.widest <= 800, 'charts fit the window');

    // The policy is enforced, not only sent: an injected inline script is refused.
    await page.evaluate(() => {
      const s = document.createElement('script');
      s.textContent = 'window.inlineRan = true';
      document.body.append(s);
    });
    await page.waitForFunction(() => (window as unknown as { cspViolations: string[] }).cspViolations.length > 0, undefined, { timeout: 5000 });
    assert.equal(await page.evaluate(() => (window as unknown as { inlineRan?: boolean }).inlineRan), undefined);
  } finally {
    await page.close();
    await built.close();
  }
});

test('charts of absent sources show an empty state instead of a blank plot', { skip, timeout: 60_000 }, async () => {
  // Only the GPU collector (simulated GPUs): no engine, allocator, peers or collectives.
  const { built, origin } = await serve(['--gpu.source=simulated']);
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 }, colorScheme: 'dark' });
  const seen = watch(page);
  try {
    await page.goto(`${origin}/`);
    await page.waitForFunction(() => document.getElementById('chart-gpu-util')!.dataset.state === 'chart', undefined, { timeout: 30_000 });
    const states = await cardState(page);
    assert.equal(states['gpu-util'].state, 'chart');
    assert.equal(states['gpu-mem'].state, 'chart');
    for (const id of ['frag', 'throughput', 'peer-rtt', 'collective']) {
      assert.equal(states[id].state, 'empty', `${id} is empty`);
      assert.ok(await page.isVisible(`#chart-${id} .empty`), `${id}: the empty message is visible`);
      assert.equal(await page.locator(`#chart-${id} canvas`).count(), 0, `${id}: no plot`);
    }
    assert.match((await page.textContent('#chart-throughput .empty')) ?? '', /--engine\.target/);
    assert.equal(await page.textContent('[data-tile="tokens"] .value'), '—');
    assert.ok(await page.isVisible('#sim-banner'));

    // Switching the color scheme redraws the charts in the other theme's colors.
    const axisDark = await page.evaluate(() => getComputedStyle(document.documentElement).getPropertyValue('--muted').trim());
    await page.emulateMedia({ colorScheme: 'light' });
    assert.notEqual(await page.evaluate(() => getComputedStyle(document.documentElement).getPropertyValue('--muted').trim()), axisDark);
    await page.waitForTimeout(1500);
    assert.equal(await page.locator('#chart-gpu-util canvas').count(), 1);
    assert.equal(await page.locator('#chart-gpu-util .uplot').count(), 1, 'the old plot was replaced, not duplicated');
    assert.equal((await cardState(page))['throughput'].state, 'empty');
    assert.deepEqual(seen.errors, []);
    assert.deepEqual(await seen.csp(), []);
  } finally {
    await page.close();
    await built.close();
  }
});
