import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { hostname } from 'node:os';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import type { FastifyPluginAsync } from 'fastify';

/** What the landing page shows about this exporter. */
export interface LandingInfo {
  readonly version: string;
  /** The GPU source in use (nvml, nvidia-smi, simulated, none); asked on every page load. */
  readonly gpuSource: () => string;
  /** Names of the running collectors; their state comes live from the snapshot. */
  readonly collectors: readonly string[];
  /** Where the "docs" link points. */
  readonly docsUrl?: string;
  /** Directory of the page's own files (test seam; defaults to the package's `assets/`). */
  readonly assetsDir?: string;
}

/** Default target of the "docs" link: the project's README in its repository. */
export const DEFAULT_DOCS_URL = 'https://github.com/ds-exporter/ds-exporter#readme';

/**
 * Headers of every landing response. The page loads only its own files (no inline
 * script or style, no third-party origin), may not be framed and leaks no referrer.
 */
export const LANDING_SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
};

interface Asset {
  readonly body: Buffer;
  readonly gzip: Buffer;
  readonly type: string;
  readonly etag: string;
}

const TYPES: Record<string, string> = {
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
};

function loadAsset(path: string): Asset {
  let body: Buffer;
  try {
    body = readFileSync(path);
  } catch (cause) {
    throw new Error(`landing page: cannot read ${path} (is the package installed completely?)`, { cause });
  }
  const ext = /\.[a-z]+$/.exec(path)?.[0] ?? '';
  const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`;
  return { body, gzip: gzipSync(body, { level: 9 }), type: TYPES[ext] ?? 'application/octet-stream', etag };
}

/**
 * The files under `/assets/`: the page's own script, modules and stylesheet, and uPlot's
 * distribution files resolved from node_modules (served by the exporter, never a CDN).
 * A fixed table read (and gzipped) once at startup, so no request path ever reaches the
 * filesystem.
 */
function loadAssets(dir: string): Map<string, Asset> {
  const require = createRequire(import.meta.url);
  const files: Array<[string, string]> = [
    ['landing.js', `${dir}/landing.js`],
    ['charts.js', `${dir}/charts.js`],
    ['history.js', `${dir}/history.js`],
    ['format.js', `${dir}/format.js`],
    ['landing.css', `${dir}/landing.css`],
    ['favicon.svg', `${dir}/favicon.svg`],
    ['uplot/uPlot.iife.min.js', require.resolve('uplot/dist/uPlot.iife.min.js')],
    ['uplot/uPlot.min.css', require.resolve('uplot/dist/uPlot.min.css')],
  ];
  return new Map(files.map(([name, path]) => [name, loadAsset(path)]));
}

const esc = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** The cards of the page, in order; `assets/charts.js` holds how each one is drawn. */
const CHARTS: ReadonlyArray<{ id: string; title: string; metric: string; what: string }> = [
  { id: 'gpu-util', title: 'GPU utilization', metric: 'ds_gpu_utilization_ratio', what: 'per GPU' },
  { id: 'gpu-mem', title: 'GPU memory used', metric: 'ds_gpu_memory_used_bytes', what: 'per GPU' },
  { id: 'frag', title: 'Memory fragmentation', metric: 'ds_gpu_memory_fragmentation_ratio', what: 'per process: (reserved − allocated) / reserved' },
  { id: 'throughput', title: 'Serving throughput', metric: 'ds_serving_throughput_tokens_per_second', what: 'tokens/s by phase' },
  { id: 'peer-rtt', title: 'Peer latency', metric: 'ds_comm_peer_last_rtt_seconds', what: 'last round trip per peer' },
  { id: 'collective', title: 'Collective latency', metric: 'ds_comm_collective_latency_seconds', what: 'mean per second, by op and job' },
];

/** The page itself; everything live is filled in by `assets/landing.js` from `/api/v1/snapshot`. */
export function renderLanding(info: LandingInfo, host: string): string {
  const source = info.gpuSource();
  const simulated = source === 'simulated';
  const docs = info.docsUrl ?? DEFAULT_DOCS_URL;
  const collectors = info.collectors
    .map((c) => `<li data-collector="${esc(c)}"><span class="dot"></span><span class="name">${esc(c)}</span><span class="state">waiting</span></li>`)
    .join('');
  const cards = CHARTS.map(
    (c) => `<article class="card" id="chart-${c.id}" data-chart="${c.id}" data-state="loading">
<header><h2>${esc(c.title)}</h2><p class="sub"><code>${c.metric}</code> · ${esc(c.what)}</p></header>
<div class="plot" role="img" aria-label="${esc(c.title)}: live chart of ${c.metric}"></div><p class="empty" hidden></p></article>`,
  ).join('\n');
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>ds-exporter · ${esc(host)}</title>
<link rel="icon" href="assets/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="assets/uplot/uPlot.min.css">
<link rel="stylesheet" href="assets/landing.css">
<script src="assets/uplot/uPlot.iife.min.js" defer></script>
<script src="assets/landing.js" type="module"></script>
</head>
<body>
<header class="top">
<div class="brand"><img src="assets/favicon.svg" alt="" width="28" height="28"><h1>ds-exporter</h1><span class="host">${esc(host)}</span></div>
<nav aria-label="endpoints">
<a href="metrics">/metrics</a><a href="api/v1/snapshot">/api/v1/snapshot</a><a href="healthz">/healthz</a><a href="readyz">/readyz</a><a href="${esc(docs)}" rel="noreferrer">docs</a>
</nav>
<span id="live" class="live" data-state="connecting" role="status">connecting…</span>
</header>
<div id="sim-banner" class="banner" role="alert"${simulated ? '' : ' hidden'}><strong>Simulated GPUs.</strong> No GPU source was found or the host is simulated: every GPU value on this page and on <a href="metrics">/metrics</a> is made up. Pass <code>--gpu.source=nvml</code> or <code>--gpu.source=nvidia-smi</code> to fail instead of simulating.</div>
<main>
<section class="facts" aria-label="exporter">
<dl>
<div><dt>Version</dt><dd id="version">${esc(info.version)}</dd></div>
<div><dt>Node.js</dt><dd id="node-version">${esc(process.version)}</dd></div>
<div><dt>GPU source</dt><dd><span id="gpu-source" class="pill${simulated ? ' warn' : ''}">${esc(source)}</span></dd></div>
<div class="collectors"><dt>Collectors</dt><dd><ul id="collectors">${collectors}</ul></dd></div>
</dl>
</section>
<section class="tiles" aria-label="summary">
<div class="tile" data-tile="gpus"><span class="label">GPUs</span><span class="value">—</span><span class="detail"></span></div>
<div class="tile" data-tile="util"><span class="label">Mean utilization</span><span class="value">—</span><span class="detail"></span></div>
<div class="tile" data-tile="mem"><span class="label">GPU memory</span><span class="value">—</span><span class="detail"></span></div>
<div class="tile" data-tile="power"><span class="label">Power</span><span class="value">—</span><span class="detail"></span></div>
<div class="tile" data-tile="tokens"><span class="label">Generation</span><span class="value">—</span><span class="detail"></span></div>
<div class="tile" data-tile="peers"><span class="label">Peers</span><span class="value">—</span><span class="detail"></span></div>
</section>
<section class="charts" aria-label="live charts">
${cards}
</section>
<noscript><p class="empty">The live charts need JavaScript; <a href="metrics">/metrics</a> and <a href="api/v1/snapshot">/api/v1/snapshot</a> work without it.</p></noscript>
</main>
<footer>ds-exporter ${esc(info.version)} · charts keep the last 5 minutes in this tab · drawn with uPlot, served by this exporter</footer>
</body>
</html>
`;
}

/** `GET /` (the landing page) and `GET /assets/*` (its files), with strict security headers. */
export const landingPlugin: FastifyPluginAsync<LandingInfo> = async (app, info) => {
  const dir = info.assetsDir ?? fileURLToPath(new URL('../../assets', import.meta.url));
  const assets = loadAssets(dir);
  const host = hostname();

  // Not wrapped in fastify-plugin: this hook covers only the routes below.
  app.addHook('onSend', async (_req, reply, payload) => {
    for (const [k, v] of Object.entries(LANDING_SECURITY_HEADERS)) reply.header(k, v);
    return payload;
  });

  app.get('/', async (_req, reply) => {
    reply.type('text/html; charset=utf-8').header('cache-control', 'no-store');
    return renderLanding(info, host);
  });

  app.get<{ Params: { '*': string } }>('/assets/*', async (req, reply) => {
    const asset = assets.get(req.params['*']);
    if (!asset) return reply.code(404).type('text/plain; charset=utf-8').send('not found\n');
    // Revalidated on every load, so an upgraded exporter never serves a stale script.
    reply.header('cache-control', 'no-cache').header('etag', asset.etag).header('vary', 'Accept-Encoding');
    if (req.headers['if-none-match'] === asset.etag) return reply.code(304).send();
    reply.type(asset.type);
    if (/\bgzip\b/.test(String(req.headers['accept-encoding'] ?? ''))) return reply.header('content-encoding', 'gzip').send(asset.gzip);
    return reply.send(asset.body);
  });
};
