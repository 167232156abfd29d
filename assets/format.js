// Number formatting for the landing page: short, unit-aware, 3 significant digits.

const sig = (v) => String(Number(v.toPrecision(3)));

/** 0..1 → "71 %" (one decimal below 10 %). */
export function percent(v) {
  const p = v * 100;
  return `${Math.abs(p) < 10 && p !== 0 ? p.toFixed(1) : Math.round(p)} %`;
}

/** Decimal SI prefixes: 12345 → "12.3k". */
export function si(v) {
  const a = Math.abs(v);
  if (a >= 1e9) return `${sig(v / 1e9)}G`;
  if (a >= 1e6) return `${sig(v / 1e6)}M`;
  if (a >= 1e3) return `${sig(v / 1e3)}k`;
  return sig(v);
}

/** Binary units: 80 × 2^30 → "80 GiB". */
export function bytes(v) {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let i = 0;
  let x = v;
  while (Math.abs(x) >= 1024 && i < units.length - 1) {
    x /= 1024;
    i++;
  }
  return `${sig(x)} ${units[i]}`;
}

/** Seconds → "190 µs", "4.5 ms", "1.2 s". */
export function duration(v) {
  const a = Math.abs(v);
  if (a === 0) return '0 s';
  if (a < 1e-6) return `${sig(v * 1e9)} ns`;
  if (a < 1e-3) return `${sig(v * 1e6)} µs`;
  if (a < 1) return `${sig(v * 1e3)} ms`;
  return `${sig(v)} s`;
}

/** Watts → "3.92 kW". */
export function watts(v) {
  return `${si(v)}W`.replace(/(\d)W$/, '$1 W').replace(/(\d)([kMG])W$/, '$1 $2W');
}

/** tokens/s → "12.3k tok/s". */
export function tokens(v) {
  return `${si(v)} tok/s`;
}

/** "3 s ago", "4 min ago". */
export function ago(seconds) {
  if (seconds < 90) return `${Math.max(0, Math.round(seconds))} s ago`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min ago`;
  return `${Math.round(seconds / 3600)} h ago`;
}
