import koffi from 'koffi';

/** Test controls exported by the fake NVML library (same dlopen handle as the exporter's). */
export interface FakeNvmlControl {
  setTimeUs(us: number): void;
  setLost(gpu: number, lost: boolean): void;
  injectXid(gpu: number, xid: number): void;
}

export function fakeNvmlControl(libPath: string): FakeNvmlControl {
  const lib = koffi.load(libPath);
  const setTime = lib.func('void fake_nvml_set_time_us(uint64_t t)');
  const setLost = lib.func('void fake_nvml_set_lost(uint32_t gpu, int lost)');
  const inject = lib.func('void fake_nvml_inject_xid(uint32_t gpu, uint64_t xid)');
  return {
    setTimeUs: (us) => setTime(us),
    setLost: (gpu, lost) => setLost(gpu, lost ? 1 : 0),
    injectXid: (gpu, xid) => inject(gpu, xid),
  };
}
