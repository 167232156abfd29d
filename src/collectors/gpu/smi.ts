import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { describeError, SourceError } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import { LineSplitter, MAX_QUERY_BYTES, parseCsvLine, parseHelpQueryGpu, parseQueryPcieReplays, planFields, REQUIRED_FIELDS, rowTimestamp, rowToReading, type FieldPlan, type SmiRow } from './smi-parse.js';
import type { GpuReading, GpuSource } from './source.js';

/** Options of the nvidia-smi source; the defaults suit production, tests shorten the times. */
export interface SmiOptions {
  readonly path: string;
  readonly intervalMs: number;
  readonly logger: Logger;
  /** Clock for supervising the child and the age of readings (real time by default). */
  readonly now?: () => number;
  /** Readings older than this fail the sample (default 3 intervals, at least 1 s). */
  readonly maxAgeMs?: number;
  /** The child is killed when it printed nothing for this long (default 5 intervals + 2 s). */
  readonly hangAfterMs?: number;
  /**
   * Restart backoff: first delay, cap, and how long a child must have run for the next
   * restart to start again from the first delay (default one interval up to 5 s, 30 s, 10 intervals at least 10 s).
   */
  readonly backoffMs?: { readonly initial: number; readonly max: number; readonly resetAfter?: number };
  /** Timeout of the one-shot calls (`--help-query-gpu`, the first query). */
  readonly callTimeoutMs?: number;
  /**
   * How often `nvidia-smi -q` is run for the PCIe replay counters, the one health signal with
   * no CSV field (default 30 intervals, at least a minute; the first run after one period).
   * 0 turns it off.
   */
  readonly queryIntervalMs?: number;
  readonly env?: NodeJS.ProcessEnv;
}

interface GpuState {
  row: SmiRow;
  /** When the row arrived (exporter clock). */
  at: number;
  /** Driver timestamp of the row, or its arrival time when not queried. */
  ts: number;
  busy: number;
  memoryBusy: number;
}

function run(path: string, args: string[], timeoutMs: number, env?: NodeJS.ProcessEnv): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(path, args, { timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 16 * 1024 * 1024, env }, (err, stdout, stderr) => {
      if (err) {
        const detail = String(stdout || stderr).trim().split('\n')[0]?.slice(0, 200);
        reject(new SourceError(`${path} ${args[0]}${detail ? `: ${detail}` : ''}`, { cause: err }));
      } else resolve(stdout);
    });
  });
}

/**
 * GPU readings from one long-lived `nvidia-smi --query-gpu=... --loop-ms=N` child: the
 * latest line per GPU is kept, utilization is integrated line by line into busy seconds,
 * the child is restarted with backoff when it exits and killed when it stops printing.
 */
export class SmiSource implements GpuSource {
  readonly kind = 'nvidia-smi' as const;
  private readonly gpus = new Map<number, GpuState>();
  private readonly now: () => number;
  private readonly maxAgeMs: number;
  private readonly hangAfterMs: number;
  private readonly backoff: { initial: number; max: number; resetAfter: number };
  private child?: ChildProcess;
  /** Every child started and not yet reaped, with a promise of its exit: close() ends them all. */
  private readonly live = new Map<ChildProcess, Promise<void>>();
  private lastOutputAt = 0;
  private watchdog?: NodeJS.Timeout;
  private restartTimer?: NodeJS.Timeout;
  private nextBackoff: number;
  private closed = false;
  private lastError = '';
  /** PCIe replays by bus id from the last `nvidia-smi -q`, and when it answered. */
  private replays?: { byBus: Map<string, number>; at: number };
  private queryTimer?: NodeJS.Timeout;
  private queryRunning = false;
  private queryFailing = false;
  private readonly queryAbort = new AbortController();
  /** Children started, for diagnostics and tests. */
  starts = 0;
  badLines = 0;

  constructor(private readonly opts: SmiOptions, readonly plan: FieldPlan) {
    this.now = opts.now ?? Date.now;
    this.maxAgeMs = opts.maxAgeMs ?? Math.max(3 * opts.intervalMs, 1000);
    this.hangAfterMs = opts.hangAfterMs ?? 5 * opts.intervalMs + 2000;
    this.backoff = {
      initial: opts.backoffMs?.initial ?? Math.min(opts.intervalMs, 5000),
      max: opts.backoffMs?.max ?? 30_000,
      resetAfter: opts.backoffMs?.resetAfter ?? Math.max(10 * opts.intervalMs, 10_000),
    };
    this.nextBackoff = this.backoff.initial;
  }

  /** Pid of the running child, if any. */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Feeds one line of output (also used for the first one-shot query). Returns false when unusable. */
  ingest(line: string): boolean {
    if (line.trim() === '') return true;
    const parsed = parseCsvLine(line, this.plan.fields);
    if (!parsed.ok) {
      this.badLines++;
      this.lastError = `unusable nvidia-smi line: ${parsed.error}`;
      this.opts.logger.debug('nvidia-smi: unusable line', { err: parsed.error, line: line.slice(0, 200) });
      return false;
    }
    const at = this.now();
    const row = parsed.row;
    const ts = rowTimestamp(row) ?? at;
    const index = (row.values.get('index') as { value: number }).value;
    const prev = this.gpus.get(index);
    const st: GpuState = { row, at, ts, busy: prev?.busy ?? 0, memoryBusy: prev?.memoryBusy ?? 0 };
    if (prev && ts > prev.ts) {
      // A gap longer than two intervals is unknown time, not busy time.
      const dt = Math.min(ts - prev.ts, 2 * Math.max(this.opts.intervalMs, 1)) / 1000;
      const u = row.values.get('utilization.gpu');
      const mu = row.values.get('utilization.memory');
      if (u?.kind === 'number') st.busy += (u.value / 100) * dt;
      if (mu?.kind === 'number') st.memoryBusy += (mu.value / 100) * dt;
    }
    this.gpus.set(index, st);
    this.lastError = '';
    return true;
  }

  /** Starts the loop child (called once by the opener, then by the restart logic). */
  start(): void {
    if (this.closed || this.child) return;
    const args = [`--query-gpu=${this.plan.fields.join(',')}`, '--format=csv,noheader,nounits', `--loop-ms=${Math.max(1, Math.round(this.opts.intervalMs))}`];
    let child: ChildProcess;
    try {
      child = spawn(this.opts.path, args, { stdio: ['ignore', 'pipe', 'pipe'], env: this.opts.env });
    } catch (err) {
      this.lastError = `cannot start ${this.opts.path}: ${describeError(err)}`;
      this.scheduleRestart();
      return;
    }
    this.starts++;
    this.child = child;
    const startedAt = this.now();
    this.lastOutputAt = startedAt;
    const splitter = new LineSplitter();
    let stderr = '';
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (chunk: string) => {
      this.lastOutputAt = this.now();
      const { lines, overlong } = splitter.push(chunk);
      if (overlong) {
        this.badLines += overlong;
        this.lastError = 'unusable nvidia-smi line: overlong';
      }
      for (const l of lines) this.ingest(l);
    });
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (c: string) => {
      if (stderr.length < 2000) stderr += c;
    });
    const exited = new Promise<void>((resolve) => {
      let done = false;
      const finish = (why: string) => {
        if (done) return;
        done = true;
        this.live.delete(child);
        if (this.child === child) this.child = undefined;
        // A child that ran for a good while earns a quick restart; one that keeps dying backs off.
        if (this.now() - startedAt >= this.backoff.resetAfter) this.nextBackoff = this.backoff.initial;
        if (!this.closed) {
          this.lastError = `nvidia-smi ${why}${stderr.trim() ? `: ${stderr.trim().split('\n')[0].slice(0, 200)}` : ''}`;
          this.opts.logger.warn('nvidia-smi exited; restarting with backoff', { err: this.lastError, backoff_ms: this.nextBackoff });
          this.scheduleRestart();
        }
        resolve();
      };
      // 'error' without a pid means it never started; with one (a failed kill) wait for 'exit'.
      child.on('error', (err) => {
        if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) finish(`could not run: ${describeError(err)}`);
        else this.lastError = `nvidia-smi: ${describeError(err)}`;
      });
      child.on('exit', (code, signal) => finish(signal ? `killed by ${signal}` : `exited with code ${code}`));
    });
    this.live.set(child, exited);
    this.armWatchdog();
  }

  private armWatchdog(): void {
    clearInterval(this.watchdog);
    this.watchdog = setInterval(() => {
      if (!this.child || this.closed) return;
      if (this.now() - this.lastOutputAt > this.hangAfterMs) {
        this.lastError = `nvidia-smi printed nothing for ${this.hangAfterMs} ms; killed`;
        this.opts.logger.warn('nvidia-smi stopped printing; killing it', { pid: this.child.pid, after_ms: this.hangAfterMs });
        this.child.kill('SIGKILL');
      }
    }, Math.max(50, Math.min(1000, this.hangAfterMs / 4)));
    this.watchdog.unref();
  }

  private scheduleRestart(): void {
    if (this.closed || this.restartTimer) return;
    const delay = this.nextBackoff;
    this.nextBackoff = Math.min(this.backoff.max, this.nextBackoff * 2);
    this.restartTimer = setTimeout(() => {
      this.restartTimer = undefined;
      this.start();
    }, delay);
  }

  /** Every period, runs `nvidia-smi -q` in the background for the PCIe replay counters; a failure is logged when it starts and ends. */
  startQueryPoll(): void {
    const every = this.queryIntervalMs;
    if (every <= 0 || this.closed || this.queryTimer) return;
    this.queryTimer = setInterval(() => void this.pollQuery(), every);
    this.queryTimer.unref();
  }

  private get queryIntervalMs(): number {
    return this.opts.queryIntervalMs ?? Math.max(60_000, 30 * this.opts.intervalMs);
  }

  /** One `nvidia-smi -q`; never more than one at a time, killed when the source closes. */
  async pollQuery(): Promise<void> {
    if (this.queryRunning || this.closed) return;
    this.queryRunning = true;
    try {
      const text = await new Promise<string>((resolve, reject) => {
        execFile(this.opts.path, ['-q'], { timeout: Math.min(30_000, Math.max(1000, this.queryIntervalMs)), killSignal: 'SIGKILL', maxBuffer: MAX_QUERY_BYTES, env: this.opts.env, signal: this.queryAbort.signal }, (err, stdout) => (err ? reject(err) : resolve(stdout)));
      });
      const byBus = parseQueryPcieReplays(text);
      this.replays = { byBus, at: this.now() };
      if (this.queryFailing) this.opts.logger.info('nvidia-smi -q answers again; PCIe replays are read');
      this.queryFailing = false;
    } catch (err) {
      if (!this.queryFailing && !this.closed) this.opts.logger.warn('nvidia-smi -q failed; PCIe replays are left out until it answers', { err: describeError(err).slice(0, 200) });
      this.queryFailing = true;
    } finally {
      this.queryRunning = false;
    }
  }

  async read(): Promise<GpuReading[]> {
    const nowMs = this.now();
    // Replay counters older than three periods are not served.
    const replays = this.replays && nowMs - this.replays.at <= 3 * this.queryIntervalMs ? this.replays.byBus : undefined;
    const fresh = [...this.gpus.entries()].filter(([, s]) => nowMs - s.at <= this.maxAgeMs).sort((a, b) => a[0] - b[0]);
    if (fresh.length === 0) {
      const age = this.gpus.size ? Math.round(nowMs - Math.max(...[...this.gpus.values()].map((s) => s.at))) : undefined;
      throw new SourceError(`nvidia-smi: no reading in the last ${this.maxAgeMs} ms${age !== undefined ? ` (latest is ${age} ms old)` : ''}${this.lastError ? `; ${this.lastError}` : ''}`);
    }
    return fresh.map(([, s]) => {
      const reading = rowToReading(s.row, this.plan, { busySecondsDelta: s.busy, memoryBusySecondsDelta: s.memoryBusy });
      s.busy = 0;
      s.memoryBusy = 0;
      const pcieReplays = reading.up ? replays?.get(reading.device.pciBusId.toUpperCase()) : undefined;
      return pcieReplays === undefined ? reading : { ...reading, health: { ...reading.health, pcieReplays } };
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.queryTimer);
    this.queryAbort.abort();
    clearTimeout(this.restartTimer);
    clearInterval(this.watchdog);
    await Promise.all(
      [...this.live].map(async ([child, exited]) => {
        child.kill('SIGTERM');
        const killer = setTimeout(() => child.kill('SIGKILL'), 1000);
        await exited;
        clearTimeout(killer);
      }),
    );
  }
}

/**
 * Opens the nvidia-smi source: reads the fields this driver offers, runs one query to
 * check that it answers with at least one GPU, then starts the long-lived loop child.
 */
export async function openSmiSource(opts: SmiOptions): Promise<SmiSource> {
  const timeout = opts.callTimeoutMs ?? 10_000;
  const help = await run(opts.path, ['--help-query-gpu'], timeout, opts.env);
  const supported = parseHelpQueryGpu(help);
  const plan = planFields(supported);
  for (const f of REQUIRED_FIELDS) if (!plan.fields.includes(f) && !(f === 'uuid' && plan.fields.includes('gpu_uuid'))) throw new SourceError(`${opts.path} --help-query-gpu does not offer the field "${f}" (${supported.size} fields listed)`);
  const first = await run(opts.path, [`--query-gpu=${plan.fields.join(',')}`, '--format=csv,noheader,nounits'], timeout, opts.env);
  const source = new SmiSource(opts, plan);
  const lines = first.split('\n').filter((l) => l.trim() !== '');
  const good = lines.filter((l) => source.ingest(l)).length;
  if (good === 0) throw new SourceError(`${opts.path} lists no GPU${lines.length ? ` (${lines.length} unusable lines, first: ${JSON.stringify(lines[0].slice(0, 120))})` : ''}`);
  source.start();
  source.startQueryPoll();
  return source;
}
