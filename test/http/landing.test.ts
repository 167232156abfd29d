import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { LANDING_SECURITY_HEADERS, renderLanding } from '../../src/http/landing.js';
import { VERSION } from '../../src/version.js';
import { testApp } from '../helpers/app.js';

const require = createRequire(import.meta.url);

test('GET / serves the page with strict security headers and no inline script or style', async () => {
  const built = await testApp(['--simulate']);
  const res = await built.app.inject({ url: '/' });
  assert.equal(res.statusCode, 200);
  assert.match(res.headers['content-type'] as string, /^text\/html; charset=utf-8/);
  const csp = res.headers['content-security-policy'] as string;
  assert.match(csp, /default-src 'none'/);
  assert.match(csp, /script-src 'self'(;|$)/);
  assert.match(csp, /style-src 'self'(;|$)/);
  assert.match(csp, /connect-src 'self'/);
  assert.match(csp, /frame-ancestors 'none'/);
  assert.doesNotMatch(csp, /unsafe|\*|https?:|data:/);
  assert.equal(res.headers['x-content-type-options'], 'nosniff');
  assert.equal(res.headers['referrer-policy'], 'no-referrer');
  assert.equal(res.headers['x-frame-options'], 'DENY');
  assert.equal(res.headers['cache-control'], 'no-store');

  const html = res.body;
  assert.match(html, new RegExp(`<dd id="version">${VERSION.replace(/\./g, '\\.')}</dd>`));
  assert.match(html, /<span id="gpu-source" class="pill warn">simulated<\/span>/);
  assert.match(html, /<div id="sim-banner" class="banner" role="alert">/, 'banner shown for simulated GPUs');
  for (const s of html.match(/<script\b[^>]*>/g) ?? []) assert.match(s, / src="assets\//, `external script only: ${s}`);
  assert.doesNotMatch(html, /<style\b| style="| on[a-z]+="/i, 'no inline style or handlers');
  assert.doesNotMatch(html, /(src|href)="(https?:)?\/\/(?!github\.com\/ds-exporter\/)/, 'no third-party resources');
  for (const id of ['gpu-util', 'gpu-mem', 'frag', 'throughput', 'peer-rtt', 'collective']) assert.match(html, new RegExp(`id="chart-${id}"`));
  for (const c of built.scheduler.collectorNames) assert.match(html, new RegExp(`data-collector="${c}"`));
  await built.close();
});

test('the page escapes what it shows and hides the banner for a real GPU source', () => {
  const html = renderLanding({ version: '1.0.0<b>', gpuSource: () => 'nvml', collectors: ['gpu', 'x"><script>'] }, 'host<1>');
  assert.match(html, /<div id="sim-banner" class="banner" role="alert" hidden>/);
  assert.match(html, /<span id="gpu-source" class="pill">nvml<\/span>/);
  assert.doesNotMatch(html, /<b>|"><script>|host<1>/);
  assert.match(html, /1\.0\.0&#60;b&#62;/);
});

test('assets: the page files and uPlot from node_modules, with security headers and revalidation', async () => {
  const built = await testApp(['--simulate']);
  const uplotJs = readFileSync(require.resolve('uplot/dist/uPlot.iife.min.js'));
  const js = await built.app.inject({ url: '/assets/uplot/uPlot.iife.min.js' });
  assert.equal(js.statusCode, 200);
  assert.match(js.headers['content-type'] as string, /^text\/javascript/);
  assert.ok(js.rawPayload.equals(uplotJs), 'byte-identical to the installed uPlot');
  const gz = await built.app.inject({ url: '/assets/uplot/uPlot.iife.min.js', headers: { 'accept-encoding': 'gzip, br' } });
  assert.equal(gz.headers['content-encoding'], 'gzip');
  assert.ok(gunzipSync(gz.rawPayload).equals(uplotJs), 'gzip when accepted');
  assert.ok(gz.rawPayload.length < uplotJs.length / 2);
  const css = await built.app.inject({ url: '/assets/uplot/uPlot.min.css' });
  assert.match(css.headers['content-type'] as string, /^text\/css/);
  assert.ok(css.rawPayload.equals(readFileSync(require.resolve('uplot/dist/uPlot.min.css'))));

  for (const name of ['landing.js', 'charts.js', 'history.js', 'format.js', 'landing.css', 'favicon.svg']) {
    const res = await built.app.inject({ url: `/assets/${name}` });
    assert.equal(res.statusCode, 200, name);
    for (const [k, v] of Object.entries(LANDING_SECURITY_HEADERS)) assert.equal(res.headers[k], v, `${name}: ${k}`);
    assert.equal(res.headers['cache-control'], 'no-cache');
    const again = await built.app.inject({ url: `/assets/${name}`, headers: { 'if-none-match': res.headers.etag as string } });
    assert.equal(again.statusCode, 304, `${name}: revalidated by ETag`);
    assert.equal(again.body, '');
  }
  for (const url of ['/assets/nope.js', '/assets/../package.json', '/assets/%2e%2e/package.json', '/assets/', '/assets/uplot/uPlot.cjs.js']) {
    const res = await built.app.inject({ url });
    assert.equal(res.statusCode, 404, url);
  }
  await built.close();
});

test('a missing asset directory fails at startup with the path in the message', async () => {
  const { default: Fastify } = await import('fastify');
  const { landingPlugin } = await import('../../src/http/landing.js');
  const app = Fastify();
  await assert.rejects(
    async () => {
      await app.register(landingPlugin, { version: '0', gpuSource: () => 'none', collectors: [], assetsDir: '/nonexistent/assets' });
      await app.ready();
    },
    /landing page: cannot read \/nonexistent\/assets\/landing\.js/,
  );
  await app.close();
});
