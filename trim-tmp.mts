import { testApp } from './test/helpers/app.ts';
async function lines(argv: string[]) {
  const built = await testApp(['--simulate', ...argv]);
  try {
    await built.scheduler.sampleAll();
    await new Promise((r) => setTimeout(r, 1100));
    await built.scheduler.sampleAll();
    const text = (await built.app.inject({ url: '/metrics' })).body;
    return text.split('\n').filter((l) => l && !l.startsWith('#'));
  } finally { await built.close(); }
}
const fam = (ls: string[]) => { const m = new Map<string, number>(); for (const l of ls) { const n = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(l)![0]; m.set(n, (m.get(n) ?? 0) + 1); } return m; };
const base = ['--simulate.gpus=2', '--simulate.peers=2'];
const b = await lines(base);
const bf = fam(b);
for (const flag of ['--no-collector.peers', '--peers.max=1', '--no-collector.textfile', '--no-collector.push', '--nvml.process-memory', '--kubelet.enrich-labels', '--kubelet.process-attribution', '--no-nvml.process-memory', '--no-kubelet.process-attribution']) {
  try {
    const l = await lines([...base, flag]);
    const f = fam(l);
    const diff: string[] = [];
    for (const k of new Set([...bf.keys(), ...f.keys()])) { const d = (f.get(k) ?? 0) - (bf.get(k) ?? 0); if (d) diff.push(`${k}:${d}`); }
    console.log(flag, b.length, '->', l.length, diff.join(' ').slice(0, 600));
  } catch (e) { console.log(flag, 'ERR', (e as Error).message.slice(0, 200)); }
}
