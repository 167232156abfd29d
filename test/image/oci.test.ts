// The tar and OCI writer of `npm run image` (scripts/image/oci.ts), read back by GNU tar.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { type Entry, canonicalJson, image, layer, ociArchive, sha256, tarLayer } from '../../scripts/image/oci.js';

const long = `app/node_modules/${'a'.repeat(90)}/${'b'.repeat(90)}/${'c'.repeat(120)}.js`;
const entries: Entry[] = [
  { type: 'dir', path: 'app', mode: 0o755 },
  { type: 'file', path: 'app/x.js', mode: 0o644, data: Buffer.from('console.log(1)\n') },
  { type: 'file', path: 'app/run', mode: 0o755, data: Buffer.alloc(0), uid: 65532, gid: 65532 },
  { type: 'dir', path: 'app/node_modules', mode: 0o755 },
  { type: 'dir', path: `app/node_modules/${'a'.repeat(90)}`, mode: 0o755 },
  { type: 'dir', path: `app/node_modules/${'a'.repeat(90)}/${'b'.repeat(90)}`, mode: 0o755 },
  { type: 'file', path: long, mode: 0o644, data: Buffer.alloc(1000, 7) },
  { type: 'file', path: 'app/é-ünïcode.txt', mode: 0o644, data: Buffer.from('x') },
  { type: 'symlink', path: 'app/link', target: `/${'t'.repeat(150)}` },
  { type: 'dir', path: 'tmp', mode: 0o1777 },
];

test('layers read back by GNU tar: long names, long link targets, modes, owners, one timestamp', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ds-oci-'));
  try {
    const tar = tarLayer(entries, 1_700_000_000);
    assert.equal(tar.length % 512, 0);
    writeFileSync(join(dir, 'l.tar'), tar);
    const listing = execFileSync('tar', ['-tvf', join(dir, 'l.tar'), '--numeric-owner', '--full-time'], { encoding: 'utf8', env: { ...process.env, TZ: 'UTC' } });
    assert.match(listing, /^drwxrwxrwt 0\/0 +0 2023-11-14 22:13:20 tmp\/$/m);
    assert.match(listing, /^-rwxr-xr-x 65532\/65532 +0 .* app\/run$/m);
    const root = join(dir, 'root');
    execFileSync('mkdir', [root]);
    execFileSync('tar', ['-xf', join(dir, 'l.tar'), '-C', root, '--numeric-owner']);
    assert.deepEqual(readFileSync(join(root, long)), Buffer.alloc(1000, 7));
    assert.equal(readFileSync(join(root, 'app/é-ünïcode.txt'), 'utf8'), 'x');
    assert.equal(readlinkSync(join(root, 'app/link')), `/${'t'.repeat(150)}`);
    assert.equal(statSync(join(root, 'app/x.js')).mtimeMs, 1_700_000_000_000);
    assert.equal(statSync(join(root, 'app/run')).mode & 0o7777, 0o755);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the same entries in another order give the same bytes; a change of one byte changes the digest', () => {
  const a = tarLayer(entries, 1);
  const b = tarLayer([...entries].reverse(), 1);
  assert.equal(sha256(a), sha256(b));
  assert.equal(layer(a).blob.digest, layer(b).blob.digest);
  const changed = entries.map((e) => (e.path === 'app/x.js' ? { ...e, data: Buffer.from('console.log(2)\n') } : e));
  assert.notEqual(sha256(tarLayer(changed, 1)), sha256(a));
  assert.notEqual(sha256(tarLayer(entries, 2)), sha256(a));
});

test('broken entry lists are refused', () => {
  const bad: [string, Entry[], RegExp][] = [
    ['absolute path', [{ type: 'dir', path: '/etc', mode: 0o755 }], /bad path/],
    ['dot-dot', [{ type: 'dir', path: 'a', mode: 0o755 }, { type: 'dir', path: 'a/../b', mode: 0o755 }], /bad path/],
    ['twice', [{ type: 'dir', path: 'a', mode: 0o755 }, { type: 'dir', path: 'a', mode: 0o755 }], /twice/],
    ['no parent', [{ type: 'file', path: 'a/b', mode: 0o644, data: Buffer.alloc(0) }], /no parent/],
    ['huge mode', [{ type: 'dir', path: 'a', mode: 0o100000000 }], /octal/],
  ];
  for (const [what, list, re] of bad) assert.throws(() => tarLayer(list, 0), re, what);
});

test('config, manifest and index reference each other by digest; JSON is canonical', () => {
  const l = layer(tarLayer(entries, 5));
  const img = image([l], { user: '65532:65532', env: ['A=1'], entrypoint: ['/x'], workingDir: '/', exposedPorts: ['9842/tcp'], labels: { b: '2', a: '1' }, created: '1970-01-01T00:00:05Z', history: ['one'] }, '1.0.0');
  const config = JSON.parse(img.config.data.toString());
  assert.deepEqual(config.rootfs.diff_ids, [l.diffId]);
  assert.equal(config.config.User, '65532:65532');
  assert.deepEqual(Object.keys(config.config.Labels), ['a', 'b']);
  const manifest = JSON.parse(img.manifest.data.toString());
  assert.equal(manifest.config.digest, img.config.digest);
  assert.equal(manifest.layers[0].digest, l.blob.digest);
  assert.equal(JSON.parse(img.index.toString()).manifests[0].digest, img.manifest.digest);
  assert.equal(canonicalJson({ b: [1, { d: 1, c: undefined }], a: 'x' }), '{"a":"x","b":[1,{"d":1}]}');
  assert.throws(() => image([l], { user: '', env: [], entrypoint: [], workingDir: '/', exposedPorts: [], labels: {}, created: '', history: [] }, 'x'), /history/);
  const archive = ociArchive(img, 5);
  const dir = mkdtempSync(join(tmpdir(), 'ds-oci-'));
  try {
    writeFileSync(join(dir, 'a.tar'), archive);
    const names = execFileSync('tar', ['-tf', join(dir, 'a.tar')], { encoding: 'utf8' }).trim().split('\n');
    assert.deepEqual(names.sort(), ['blobs/', 'blobs/sha256/', ...[img.config, img.manifest, l.blob].map((b) => `blobs/sha256/${b.digest.slice(7)}`).sort(), 'index.json', 'oci-layout'].sort());
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
