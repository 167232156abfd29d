import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { pushSchema, validatePush } from '../../src/push/schema.js';

test('docs/push-api.schema.json is the schema the exporter validates with', () => {
  const doc = JSON.parse(readFileSync(new URL('../../docs/push-api.schema.json', import.meta.url), 'utf8'));
  assert.deepEqual(doc, JSON.parse(JSON.stringify(pushSchema)), 'docs/push-api.schema.json is generated from src/push/schema.ts: npm run generate');
});

test('the example of docs/push-api.md is valid', () => {
  const md = readFileSync(new URL('../../docs/push-api.md', import.meta.url), 'utf8');
  const example = /```json\n([\s\S]*?)```/.exec(md);
  assert.ok(example, 'no JSON example');
  const body = validatePush(JSON.parse(example[1]));
  assert.equal(body.devices?.[0].reserved_bytes, 68719476736);
});
