import koffi from 'koffi';

/** Test controls exported by the fake NVML library (same dlopen handle as the exporter's). */
export interface FakeNvmlControl {
  setTimeUs(us: number): void;
  setLost(gpu: number, lost: boolean): void;
  injectXid(gpu: number, xid: number): void;
  /** Changes a config key of the running fake (GPM values, errors, the MIG layout). */
  setConfig(key: string, value: string | number): void;
  /** GPM samples allocated and not freed. */
  gpmSamplesOutstanding(): number;
}

export function fakeNvmlControl(libPath: string): FakeNvmlControl {
  const lib = koffi.load(libPath);
  const setTime = lib.func('void fake_nvml_set_time_us(uint64_t t)');
  const setLost = lib.func('void fake_nvml_set_lost(uint32_t gpu, int lost)');
  const inject = lib.func('void fake_nvml_inject_xid(uint32_t gpu, uint64_t xid)');
  const setConfig = lib.func('void fake_nvml_set_config(const char *key, const char *value)');
  return {
    setTimeUs: (us) => setTime(us),
    setLost: (gpu, lost) => setLost(gpu, lost ? 1 : 0),
    injectXid: (gpu, xid) => inject(gpu, xid),
    setConfig: (key, value) => setConfig(key, String(value)),
    // Bound when asked: a library built without GPM does not have it.
    gpmSamplesOutstanding: () => lib.func('int fake_nvml_gpm_samples_outstanding()')() as number,
  };
}
