import assert from 'node:assert/strict';
import { test } from 'node:test';
import bcrypt from 'bcryptjs';
import Fastify from 'fastify';
import { silentLogger } from '../../src/core/logger.js';
import { securityPlugin } from '../../src/http/security.js';
import { testApp } from '../helpers/app.js';

async function app(opts: { maxRequests?: number; users?: Record<string, string>; headers?: Record<string, string> }) {
  const a = Fastify();
  await a.register(securityPlugin, {
    logger: silentLogger,
    maxRequests: opts.maxRequests ?? 0,
    webConfig: { basicAuthUsers: new Map(Object.entries(opts.users ?? {})), headers: opts.headers ?? {} },
  });
  a.get('/slow', async () => {
    await new Promise((r) => setTimeout(r, 300));
    return 'done';
  });
  a.get('/healthz', async () => 'ok');
  return a;
}

test('requests beyond --web.max-requests get 503 with Retry-After, and the slots come back', async () => {
  const a = await app({ maxRequests: 2 });
  const res = await Promise.all(Array.from({ length: 5 }, () => a.inject({ url: '/slow' })));
  assert.deepEqual(res.map((r) => r.statusCode).sort(), [200, 200, 503, 503, 503]);
  assert.equal(res.find((r) => r.statusCode === 503)!.headers['retry-after'], '1');
  const again = await Promise.all(Array.from({ length: 2 }, () => a.inject({ url: '/slow' })));
  assert.deepEqual(again.map((r) => r.statusCode), [200, 200]);
  await a.close();
});

test('basic auth: bcrypt $2y$ hashes, cached verification, hostile headers', async () => {
  const a = await app({ users: { admin: bcrypt.hashSync('pw', 4).replace(/^\$2[ab]\$/, '$2y$') }, headers: { 'X-Custom': 'yes' } });
  const auth = (s: string) => ({ authorization: 'Basic ' + Buffer.from(s).toString('base64') });
  assert.equal((await a.inject({ url: '/slow', headers: auth('admin:pw') })).statusCode, 200);
  const t0 = performance.now();
  assert.equal((await a.inject({ url: '/slow', headers: auth('admin:pw') })).statusCode, 200);
  assert.ok(performance.now() - t0 < 1000);
  for (const h of ['Basic', 'Basic !!!', 'Bearer x', 'Basic ' + Buffer.from('nocolon').toString('base64'), 'Basic ' + 'A'.repeat(100_000)]) {
    assert.equal((await a.inject({ url: '/slow', headers: { authorization: h } })).statusCode, 401, h.slice(0, 20));
  }
  assert.equal((await a.inject({ url: '/slow', headers: auth('admin:pW') })).statusCode, 401);
  const open = await a.inject({ url: '/healthz' });
  assert.equal(open.statusCode, 200);
  assert.equal(open.headers['x-custom'], 'yes');
  await a.close();
});

test('errors never carry stack traces; unknown routes are plain 404s', async () => {
  const built = await testApp(['--simulate', '--simulate.gpus=1']);
  const r = await built.app.inject({ url: '/nope' });
  assert.equal(r.statusCode, 404);
  assert.doesNotMatch(r.body, /at .*\.(ts|js):\d+/);
  const big = await built.app.inject({ method: 'POST', url: '/metrics', payload: 'x'.repeat(2 << 20), headers: { 'content-type': 'text/plain' } });
  assert.ok([404, 413].includes(big.statusCode), String(big.statusCode));
  assert.doesNotMatch(big.body, /at .*\.(ts|js):\d+/);
  await built.close();
});
