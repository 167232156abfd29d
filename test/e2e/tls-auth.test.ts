import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import bcrypt from 'bcryptjs';
import { has, type Proc, startExporter, startPrometheus, waitFor } from '../helpers/procs.js';

const skip = (!has('prometheus') && 'prometheus is not installed') || (!has('openssl', ['version']) && 'openssl is not installed');
const dir = mkdtempSync(join(tmpdir(), 'dsx-tls-'));
let exporter: Proc;
let port = 0;

function ssl(...args: string[]) {
  execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
}

/** A CA, a server certificate for 127.0.0.1 and a client certificate, all made here. */
function makeCerts() {
  ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=ds-test-ca');
  writeFileSync(join(dir, 'san.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  ssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=127.0.0.1');
  ssl('x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.pem', '-days', '2', '-extfile', 'san.ext');
  ssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'client.key', '-out', 'client.csr', '-subj', '/CN=prometheus');
  ssl('x509', '-req', '-in', 'client.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'client.pem', '-days', '2');
}

function webConfig(user: string, password: string, extra = '') {
  const hash = bcrypt.hashSync(password, 6).replace(/^\$2[ab]\$/, '$2y$');
  writeFileSync(join(dir, 'web.yml'), `tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n${extra}basic_auth_users:\n  ${user}: ${hash}\n`);
}

function get(path: string, opts: { auth?: string; cert?: boolean } = {}): Promise<{ status: number; body: string; headers: Record<string, unknown> }> {
  return new Promise((res, rej) => {
    const req = https.get(
      {
        host: '127.0.0.1', port, path,
        ca: readFileSync(join(dir, 'ca.pem')),
        ...(opts.cert ? { cert: readFileSync(join(dir, 'client.pem')), key: readFileSync(join(dir, 'client.key')) } : {}),
        headers: opts.auth ? { authorization: 'Basic ' + Buffer.from(opts.auth).toString('base64') } : {},
      },
      (r) => {
        let body = '';
        r.on('data', (d) => (body += d));
        r.on('end', () => res({ status: r.statusCode ?? 0, body, headers: r.headers }));
      },
    );
    req.on('error', rej);
  });
}

before(async () => {
  if (skip) return;
  makeCerts();
  webConfig('prometheus', 's3cret');
  exporter = await startExporter(['--simulate', '--simulate.gpus=2', `--web.config.file=${join(dir, 'web.yml')}`, '--web.max-requests=5'], {}, {
    readyUrl: async (p) => {
      port = p;
      return (await get('/readyz')).status === 200;
    },
  });
});
after(async () => exporter?.stop());

test('a real Prometheus scrapes over TLS with basic auth', { skip, timeout: 60_000 }, async () => {
  const prom = await startPrometheus([`127.0.0.1:${port}`], {
    jobExtra: ['scheme: https', 'tls_config:', `  ca_file: ${join(dir, 'ca.pem')}`, 'basic_auth:', '  username: prometheus', '  password: s3cret'],
  });
  try {
    await waitFor(async () => (await prom.query('ds_gpu_up')).length === 2, 30_000, 'ds_gpu_up through TLS + basic auth');
    assert.equal((await prom.query('up{job="ds-exporter"}'))[0].value[1], '1');
  } finally {
    await prom.stop();
  }
});

test('wrong or missing credentials get 401 without detail; health stays open', { skip }, async () => {
  assert.equal((await get('/metrics')).status, 401);
  const wrong = await get('/metrics', { auth: 'prometheus:nope' });
  assert.equal(wrong.status, 401);
  assert.equal(wrong.headers['www-authenticate'], 'Basic realm="ds-exporter"');
  assert.equal((await get('/metrics', { auth: 'nobody:s3cret' })).status, 401);
  assert.equal((await get('/metrics', { auth: 'prometheus:s3cret' })).status, 200);
  assert.equal((await get('/healthz')).status, 200);
});

test('the web config is re-read when it changes: new password works, old one stops', { skip, timeout: 30_000 }, async () => {
  webConfig('prometheus', 'rotated');
  await waitFor(async () => (await get('/metrics', { auth: 'prometheus:rotated' })).status === 200, 15_000, 'reload');
  assert.equal((await get('/metrics', { auth: 'prometheus:s3cret' })).status, 401);
  // A broken file is refused and the previous config keeps working.
  writeFileSync(join(dir, 'web.yml'), 'basic_auth_users:\n  prometheus: not-a-hash\n');
  await new Promise((r) => setTimeout(r, 4500));
  assert.equal((await get('/metrics', { auth: 'prometheus:rotated' })).status, 200);
  await waitFor(async () => /web config reload failed/.test(exporter.output()), 5000, 'reload failure logged');
});

test('a slow client sending headers forever is cut off', { skip, timeout: 30_000 }, async () => {
  const { connect: tlsConnect } = await import('node:tls');
  const closed = await new Promise<number>((res) => {
    const t0 = Date.now();
    const s = tlsConnect({ host: '127.0.0.1', port, ca: readFileSync(join(dir, 'ca.pem')) }, () => {
      s.write('GET /metrics HTTP/1.1\r\nHost: x\r\n');
      const drip = setInterval(() => s.write('X-Slow: 1\r\n'), 1000);
      s.on('close', () => {
        clearInterval(drip);
        res(Date.now() - t0);
      });
    });
    s.on('error', () => {});
  });
  assert.ok(closed < 20_000, `slow-header connection closed after ${closed} ms`);
  void connect;
});

test('a wrong web config file is a one-line error and exit code 2', { skip }, () => {
  writeFileSync(join(dir, 'bad.yml'), 'tls_server_config:\n  cert_file: missing.pem\n  key_file: server.key\n');
  let stderr = '';
  let code = 0;
  try {
    execFileSync(process.execPath, ['--import', 'tsx', 'src/main.ts', `--web.config.file=${join(dir, 'bad.yml')}`, '--simulate'], { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (e) {
    const err = e as { status: number; stderr: Buffer };
    code = err.status;
    stderr = err.stderr.toString();
  }
  assert.equal(code, 2);
  assert.match(stderr, /^ds-exporter: error: --web.config.file .*bad.yml: tls_server_config.cert_file: cannot read "missing.pem"/);
  assert.equal(stderr.trim().split('\n').length, 1);
});

test('mTLS: RequireAndVerifyClientCert refuses a client without a trusted certificate', { skip, timeout: 60_000 }, async () => {
  writeFileSync(join(dir, 'mtls.yml'), 'tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n  client_ca_file: ca.pem\n  client_auth_type: RequireAndVerifyClientCert\n');
  const saved = port;
  const m = await startExporter(['--simulate', '--simulate.gpus=1', `--web.config.file=${join(dir, 'mtls.yml')}`], {}, {
    readyUrl: async (p) => {
      port = p;
      return (await get('/readyz', { cert: true })).status === 200;
    },
  });
  try {
    assert.equal((await get('/metrics', { cert: true })).status, 200);
    await assert.rejects(get('/metrics'), /certificate|socket hang up|ECONNRESET|alert/i);
  } finally {
    await m.stop();
    port = saved;
  }
});
