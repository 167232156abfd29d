import { writeFileSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { freePort, type Proc, startServer } from './procs.js';

// A real Alertmanager (built by scripts/setup-go-tools.sh; test/helpers/go-tools.ts finds it)
// and a webhook receiver that stands for the person being paged.

/** What Alertmanager's webhook receiver posts (version 4 of its payload). */
export interface WebhookMessage {
  readonly version: string;
  readonly receiver: string;
  readonly status: 'firing' | 'resolved';
  readonly groupLabels: Record<string, string>;
  readonly commonLabels: Record<string, string>;
  readonly externalURL: string;
  readonly alerts: ReadonlyArray<{
    readonly status: 'firing' | 'resolved';
    readonly labels: Record<string, string>;
    readonly annotations: Record<string, string>;
    readonly startsAt: string;
    readonly generatorURL: string;
  }>;
}

export interface WebhookReceiver {
  readonly url: string;
  /** Every message received so far, in order, with the path it was posted to. */
  readonly messages: Array<{ path: string; body: WebhookMessage }>;
  /** Bodies that were not a webhook message (kept so a test can fail on them). */
  readonly rejected: string[];
  close(): Promise<void>;
}

/** A local HTTP server that records what Alertmanager posts to it (any path). */
export async function startWebhookReceiver(): Promise<WebhookReceiver> {
  const messages: Array<{ path: string; body: WebhookMessage }> = [];
  const rejected: string[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size <= 1 << 20) chunks.push(c);
    });
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      try {
        if (req.method !== 'POST' || size > 1 << 20) throw new Error(`${req.method} of ${size} bytes`);
        const body = JSON.parse(text) as WebhookMessage;
        if (!Array.isArray(body.alerts)) throw new Error('no alerts array');
        messages.push({ path: req.url ?? '/', body });
        res.writeHead(200).end();
      } catch (e) {
        rejected.push(`${String(e)}: ${text.slice(0, 500)}`);
        res.writeHead(400).end();
      }
    });
  });
  const port = await freePort();
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${port}`,
    messages,
    rejected,
    close: () => new Promise((r) => server.close(() => r())),
  };
}

/** Starts Alertmanager `binary` with `config` (YAML text) on a free loopback port, clustering off. */
export function startAlertmanager(binary: string, config: string): Promise<Proc> {
  return startServer(
    'am',
    binary,
    (port, dir) => {
      writeFileSync(join(dir, 'alertmanager.yml'), config); // the server's folder exists only now
      return [`--config.file=${join(dir, 'alertmanager.yml')}`, `--storage.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`, '--cluster.listen-address=', '--log.level=warn'];
    },
    '/-/ready',
  );
}
