import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { buildApp } from '../../src/app.js';
import { loadConfig } from '../../src/config/config.js';
import type { CollectorDefinition } from '../../src/core/collector.js';
import { silentLogger } from '../../src/core/logger.js';

test('a collector whose retried creation is in flight at close is closed once it is created', async () => {
  let attempts = 0;
  let closed = 0;
  const def: CollectorDefinition = {
    name: 'slow',
    description: 'fails once, then takes a while to start',
    defaultEnabled: true,
    async create() {
      if (attempts++ === 0) throw new Error('not yet');
      await sleep(300);
      return { sample: async () => {}, close: async () => void closed++ };
    },
  };
  const config = loadConfig(['--sample.interval=100ms'], {}, [def]);
  const built = await buildApp(config, { logger: silentLogger, processMetrics: false });
  built.start();
  while (attempts < 2) await sleep(10);
  await built.close();
  assert.equal(closed, 1, 'the collector created during close was closed');
});
