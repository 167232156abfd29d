import type { MetricDef } from '../catalog/index.js';
import { type ExpositionFormat, RenderCache, type RenderOptions, type Rendered } from './render.js';
import { SeriesStore } from './series.js';

export { Batch, type Entry, type Labels } from './series.js';
export type { ExpositionFormat, Rendered } from './render.js';
export type { Family, Series } from './series.js';

export interface StoreOptions extends RenderOptions {
  readonly now?: () => number;
  readonly catalog?: readonly MetricDef[];
}

/**
 * The sample store: series and staleness (series.ts) with their rendering (render.ts:
 * the hand-written exposition writer of exposition.ts, a render cache and gzip). The
 * JSON snapshot is built by the HTTP layer that serves it (src/http/snapshot.ts).
 */
export class SampleStore extends SeriesStore {
  private readonly rendering: RenderCache;

  constructor(opts: StoreOptions = {}) {
    super(opts);
    this.rendering = new RenderCache(this, { ...opts, now: this.now });
  }

  /** prom-client's registries of the process and Node.js metrics (text and OpenMetrics). */
  get textRegistry() {
    return this.rendering.textRegistry;
  }
  get omRegistry() {
    return this.rendering.omRegistry;
  }

  /**
   * The exposition in `format`, rendered at most once per change and shared by concurrent
   * scrapes (see RenderCache.render).
   */
  render(format: ExpositionFormat = 'text'): Promise<Rendered> {
    return this.rendering.render(format);
  }
}
