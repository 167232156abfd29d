import { promisify } from 'node:util';
import { gzip } from 'node:zlib';
import client from 'prom-client';
import { NEWLINE, writeFamilies } from './exposition.js';
import { PROTOBUF_CONTENT_TYPE, renderProtobufFamilies, renderProtobufRegistry } from './render-protobuf.js';
import { registerRuntimeMetrics, shareRuntimeMetrics } from './runtime-metrics.js';
import type { Family } from './series.js';

const gzipAsync = promisify(gzip);

/** The formats the store renders: Prometheus text 0.0.4, OpenMetrics 1.0.0, and delimited protobuf `MetricFamily` messages (render-protobuf.ts). */
export type ExpositionFormat = 'text' | 'openmetrics' | 'protobuf';

/** A rendered exposition body, cached until the next commit. */
export interface Rendered {
  readonly body: Buffer;
  readonly contentType: string;
  /** The body gzipped once, off the event loop (zlib's thread pool), shared by every caller. */
  gzip(): Promise<Buffer>;
}

/** What is rendered: the families, and a number that changes whenever they do. */
export interface RenderSource {
  families(): Iterable<Family>;
  readonly generation: number;
}

export interface RenderOptions {
  readonly now?: () => number;
  /** Register prom-client's process and Node.js metrics (off in unit tests for stable output). */
  readonly processMetrics?: boolean;
  /** Re-render at least this often even without commits, so process metrics move. */
  readonly maxCacheAgeMs?: number;
  /**
   * Serve a rendering younger than this even when a commit happened since, so a burst of
   * scrapes renders at most once per interval (0: always fresh).
   */
  readonly minRenderIntervalMs?: number;
  /**
   * How much older than `maxCacheAgeMs` a rendering may be and still be served while its
   * successor renders in the background (0: a scrape that finds no fresh rendering waits).
   */
  readonly staleWhileRenderMs?: number;
}

interface CacheEntry {
  readonly generation: number;
  readonly at: number;
  promise: Promise<Rendered>;
  /** The rendering has resolved (only a finished rendering is served stale). */
  done: boolean;
  /** A scrape asked for gzip: a background successor is gzipped before it is swapped in. */
  gzipWanted: boolean;
}

/**
 * Rendering: the catalog families through the hand-written exposition writers
 * (exposition.ts for text and OpenMetrics, render-protobuf.ts for protobuf), followed by
 * prom-client's runtime metrics; cached per format until
 * the next change, gzipped once per rendering.
 */
export class RenderCache {
  private readonly now: () => number;
  private readonly maxCacheAgeMs: number;
  private readonly minRenderIntervalMs: number;
  private readonly staleWhileRenderMs: number;
  /** prom-client's process and Node.js metrics, rendered after the catalog families. */
  readonly textRegistry = new client.Registry();
  readonly omRegistry = new client.Registry<typeof client.openMetricsContentType>();
  private readonly cache = new Map<string, CacheEntry>();
  private readonly refreshing = new Set<string>();

  constructor(private readonly source: RenderSource, opts: RenderOptions = {}) {
    this.now = opts.now ?? Date.now;
    this.maxCacheAgeMs = opts.maxCacheAgeMs ?? 1000;
    this.minRenderIntervalMs = opts.minRenderIntervalMs ?? 0;
    this.staleWhileRenderMs = opts.staleWhileRenderMs ?? 0;
    this.omRegistry.setContentType(client.openMetricsContentType);
    if (opts.processMetrics) {
      // One set of runtime metrics, registered in both registries (each formats them its way):
      // two sets would run two event-loop monitors and two GC observers.
      registerRuntimeMetrics(this.textRegistry);
      shareRuntimeMetrics(this.textRegistry, this.omRegistry);
    }
  }

  /**
   * The exposition in `format`, rendered at most once per commit and shared by concurrent
   * scrapes. With `staleWhileRenderMs`, a rendering that is behind but younger than
   * `maxCacheAgeMs + staleWhileRenderMs` is served while its successor renders in the
   * background, so a burst of scrapes never waits on a rendering.
   */
  render(format: ExpositionFormat = 'text'): Promise<Rendered> {
    const now = this.now();
    const hit = this.cache.get(format);
    if (hit) {
      const age = now - hit.at;
      if (age < this.maxCacheAgeMs && (hit.generation === this.source.generation || age < this.minRenderIntervalMs)) return hit.promise;
      if (this.staleWhileRenderMs > 0 && hit.done && age < this.maxCacheAgeMs + this.staleWhileRenderMs) {
        this.refresh(format, hit);
        return hit.promise;
      }
    }
    const entry = this.startRender(format);
    this.cache.set(format, entry);
    entry.promise.catch(() => {
      if (this.cache.get(format) === entry) this.cache.delete(format);
    });
    return entry.promise;
  }

  /** Renders `format` in a later turn of the event loop and swaps it in (gzipped first if scrapes asked for gzip). */
  private refresh(format: ExpositionFormat, old: CacheEntry): void {
    if (this.refreshing.has(format)) return;
    this.refreshing.add(format);
    setImmediate(() => {
      const entry = this.startRender(format);
      entry.promise
        .then((r) => (old.gzipWanted ? r.gzip() : undefined))
        .then(
          () => {
            if (this.cache.get(format) === old) this.cache.set(format, entry);
          },
          () => {},
        )
        .finally(() => this.refreshing.delete(format));
    });
  }

  private startRender(format: ExpositionFormat): CacheEntry {
    const entry: CacheEntry = { generation: this.source.generation, at: this.now(), promise: undefined as unknown as Promise<Rendered>, done: false, gzipWanted: false };
    let parts: Promise<Buffer[]>;
    let contentType: string;
    if (format === 'protobuf') {
      // The runtime metrics in their text names (counters keep `_total` in protobuf).
      const ours = renderProtobufFamilies(this.source.families());
      contentType = PROTOBUF_CONTENT_TYPE;
      parts = this.textRegistry.getMetricsAsArray().length ? this.textRegistry.getMetricsAsJSON().then((json) => [...ours, renderProtobufRegistry(json)]) : Promise.resolve(ours);
    } else {
      const ours = writeFamilies(this.source.families(), format);
      const registry = format === 'text' ? this.textRegistry : this.omRegistry;
      contentType = format === 'text' ? client.prometheusContentType : client.openMetricsContentType;
      parts = (registry.getMetricsAsArray().length ? registry.metrics() : Promise.resolve(format === 'text' ? '' : '# EOF\n')).then((runtime) => {
        if (runtime) {
          if (format === 'text' && ours.length) ours.push(NEWLINE);
          ours.push(Buffer.from(runtime));
        }
        return ours;
      });
    }
    entry.promise = parts.then((ours): Rendered => {
      const body = Buffer.concat(ours);
      let gz: Promise<Buffer> | undefined;
      entry.done = true;
      return {
        body,
        contentType,
        gzip: () => {
          entry.gzipWanted = true;
          return (gz ??= gzipAsync(body, { level: 6 }));
        },
      };
    });
    return entry;
  }

}
