import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { GPU_PEAKS, peakFlops } from '../../src/generate/rules/gpu-peak.js';

test('the peak table: dense figures (half the datasheets\' sparse ones), every row sourced, lookups by NVML name', () => {
  for (const p of GPU_PEAKS) {
    assert.match(p.source, /datasheet.*https:\/\/www\.nvidia\.com\//, p.names[0]);
    assert.ok(p.bf16 > 1e14 && p.bf16 < 1e16, `${p.names[0]} bf16 ${p.bf16}`);
    if (p.fp8 !== undefined) assert.ok(Math.abs(p.fp8 / p.bf16 - 2) < 0.03, `${p.names[0]}: FP8 is twice BF16 on these parts`);
  }
  assert.equal(peakFlops('NVIDIA H100 80GB HBM3', 'bf16'), 989.4e12);
  assert.equal(peakFlops('NVIDIA H100 80GB HBM3 (simulated)', 'fp8'), 1978.9e12);
  assert.equal(peakFlops('NVIDIA A100-SXM4-80GB', 'fp8'), undefined);
  assert.equal(peakFlops('NVIDIA H100 80GB HBM3 MIG 1g.10gb', 'bf16'), undefined);
  assert.equal(peakFlops('NVIDIA B200', 'bf16'), undefined);
});

test('docs/efficiency.md lists the same table', () => {
  const doc = readFileSync(new URL('../../docs/efficiency.md', import.meta.url), 'utf8');
  const rows = doc.split('\n').filter((l) => l.startsWith('| `NVIDIA'));
  assert.equal(rows.length, GPU_PEAKS.length);
  for (const p of GPU_PEAKS) {
    const row = rows.find((r) => r.includes(`\`${p.names[0]}\``));
    assert.ok(row, p.names[0]);
    for (const n of p.names) assert.ok(row.includes(`\`${n}\``), n);
    const cells = row.split('|').map((c) => c.trim());
    assert.equal(Number(cells[2]), p.bf16 / 1e12, `${p.names[0]} BF16`);
    assert.equal(cells[3], p.fp8 === undefined ? '—' : String(p.fp8 / 1e12), `${p.names[0]} FP8`);
  }
});
