import { createLogger } from '../../src/core/logger.js';
import { testApp } from './app.js';
import { buildFakeNvml, writeFakeNvmlConfig } from './fake-nvml.js';
import { fakeNvmlControl } from './fake-nvml-control.js';

/** The fake clock's start, in µs (shared by the exporter and the fake library). */
export const T0_US = 1_800_000_000_000_000;

/**
 * An exporter on the fake NVML (built without the `omit` functions, configured by `config`),
 * with a fake clock shared by the exporter and the library and its log lines kept. It is put
 * on `open` so the test file closes it even when an assertion failed: the NVML event thread
 * would keep the process alive. `tick` moves the clock and samples once.
 */
export async function fakeNvmlApp(
  open: Array<{ close(): Promise<void> }>,
  config: Record<string, string | number>,
  omit: readonly string[] = [],
  extraArgs: readonly string[] = [],
) {
  const lib = buildFakeNvml(omit);
  writeFakeNvmlConfig(config);
  const ctl = fakeNvmlControl(lib);
  let nowUs = T0_US;
  ctl.setTimeUs(nowUs);
  const logs: string[] = [];
  const logger = createLogger('info', (l) => logs.push(l));
  const built = await testApp(['--gpu.source=nvml', `--nvml.library=${lib}`, '--no-collector.sim', ...extraArgs], { now: () => Math.floor(nowUs / 1000), logger });
  open.push(built);
  const metrics = async () => (await built.app.inject({ url: '/metrics' })).body;
  const tick = async (ms = 1000) => {
    nowUs += ms * 1000;
    ctl.setTimeUs(nowUs);
    await built.scheduler.sampleAll();
  };
  await built.scheduler.sampleAll();
  return { built, ctl, metrics, tick, logs, lib };
}
