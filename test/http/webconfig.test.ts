import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { ConfigError } from '../../src/core/errors.js';
import { parseWebConfig } from '../../src/http/webconfig.js';

const HASH = '$2y$10$5e1jOy2EmVUGnBMwM7MjpOrYTZBj9hU5Xbq7a6bLhMOW7hIPm1JOa';
const CERT = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
const KEY = '-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n';
const files: Record<string, string> = { 'c.pem': CERT, 'k.pem': KEY, 'ca.pem': CERT };
const read = (p: string) => {
  if (!(p in files)) throw new Error(`ENOENT: ${p}`);
  return files[p];
};

test('a full exporter-toolkit config parses', () => {
  const c = parseWebConfig(
    `tls_server_config:\n  cert_file: c.pem\n  key_file: k.pem\n  client_ca_file: ca.pem\n  client_auth_type: RequireAndVerifyClientCert\n  min_version: TLS13\nhttp_server_config:\n  headers:\n    Strict-Transport-Security: max-age=31536000\nbasic_auth_users:\n  prometheus: ${HASH}\n`,
    read,
  );
  assert.equal(c.tls?.minVersion, 'TLSv1.3');
  assert.equal(c.tls?.requestCert, true);
  assert.equal(c.tls?.requireCert, true);
  assert.equal(c.tls?.rejectUnauthorized, true);
  assert.equal(c.basicAuthUsers.get('prometheus'), HASH);
  assert.equal(c.headers['Strict-Transport-Security'], 'max-age=31536000');
});

test('an empty file means no TLS and no auth', () => {
  const c = parseWebConfig('', read);
  assert.equal(c.tls, undefined);
  assert.equal(c.basicAuthUsers.size, 0);
});

test('wrong configs are ConfigErrors naming the field', () => {
  const cases: Array<[string, RegExp]> = [
    ['tls_server_config: [', /invalid YAML/],
    ['- a\n- b', /top level must be a mapping/],
    ['tls_config:\n  cert_file: c.pem', /unknown field "tls_config"/],
    ['tls_server_config:\n  cert_file: c.pem', /key_file \(or key\) is required/],
    ['tls_server_config:\n  cert_file: nope.pem\n  key_file: k.pem', /cert_file: cannot read "nope.pem"/],
    ['tls_server_config:\n  cert_file: k.pem\n  key_file: k.pem', /no PEM certificate/],
    ['tls_server_config:\n  cert_file: c.pem\n  key_file: c.pem', /no PEM private key/],
    ['tls_server_config:\n  cert_file: c.pem\n  key_file: k.pem\n  min_version: TLS99', /min_version: expected one of/],
    ['tls_server_config:\n  cert_file: c.pem\n  key_file: k.pem\n  client_auth_type: Sometimes', /client_auth_type: expected one of/],
    ['tls_server_config:\n  cert_file: c.pem\n  key_file: k.pem\n  client_auth_type: RequireAndVerifyClientCert', /needs client_ca_file/],
    ['basic_auth_users:\n  admin: hunter2', /basic_auth_users.admin: not a bcrypt hash/],
    ['basic_auth_users: [a]', /must be a mapping/],
    ['http_server_config:\n  headers:\n    "X: y": z', /invalid header/],
  ];
  for (const [text, re] of cases) assert.throws(() => parseWebConfig(text, read), (e: unknown) => e instanceof ConfigError && re.test(e.message), text);
});

test('hostile input: huge files, alias bombs and random text only ever give ConfigError', () => {
  assert.throws(() => parseWebConfig('a: ' + 'x'.repeat(2 << 20), read), /larger than/);
  const bomb = 'a: &a ["x","x","x","x","x","x","x","x","x"]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n';
  assert.throws(() => parseWebConfig(bomb, read), ConfigError);
  fc.assert(
    fc.property(fc.string({ maxLength: 400 }), (text) => {
      try {
        parseWebConfig(text, read);
      } catch (e) {
        if (!(e instanceof ConfigError)) throw e;
      }
    }),
    { numRuns: 10_000 },
  );
  const field = fc.constantFrom('tls_server_config', 'basic_auth_users', 'http_server_config', 'cert_file', 'key_file', 'client_ca_file', 'headers', 'min_version');
  fc.assert(
    fc.property(fc.dictionary(field, fc.oneof(fc.string(), fc.integer(), fc.dictionary(field, fc.string()), fc.array(fc.string()))), (obj) => {
      try {
        parseWebConfig(JSON.stringify(obj), read);
      } catch (e) {
        if (!(e instanceof ConfigError)) throw e;
      }
    }),
    { numRuns: 10_000 },
  );
});
