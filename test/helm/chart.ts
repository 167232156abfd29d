import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cp, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { parseAllDocuments, parse as parseYaml } from 'yaml';

/** The chart under test. */
export const CHART = resolve(import.meta.dirname, '../../helm/ds-exporter');
export const ROOT = resolve(import.meta.dirname, '../..');

/** helm from scripts/setup-test-tools.sh, else PATH, else ~/go/bin; undefined when none is there. */
export function findHelm(): string | undefined {
  const candidates = [join(ROOT, '.test-tools/bin/helm'), ...(process.env.PATH ?? '').split(':').filter(Boolean).map((d) => join(d, 'helm')), join(homedir(), 'go/bin/helm')];
  return candidates.find((c) => existsSync(c));
}

export const HELM = findHelm();
/** node:test option that skips, visibly, when helm is missing. */
export const needHelm = HELM ? {} : { skip: 'helm not found: run scripts/setup-test-tools.sh (go install helm.sh/helm/v3/cmd/helm@v3.21.4)' };

export interface HelmResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs helm; never throws on a non-zero exit. */
export function helm(args: string[]): Promise<HelmResult> {
  return new Promise((done, fail) => {
    if (!HELM) return fail(new Error('helm not found'));
    execFile(HELM, args, { maxBuffer: 64 << 20, env: { ...process.env, HELM_CACHE_HOME: join(tmpdir(), 'ds-helm-cache'), HELM_CONFIG_HOME: join(tmpdir(), 'ds-helm-config') } }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      done({ code, stdout, stderr });
    });
  });
}

/** A Kubernetes object as rendered. */
export type K8s = { apiVersion: string; kind: string; metadata: { name: string; [k: string]: any }; [k: string]: any };

/** The image a user built and pushed (the chart has none by default); given before the test's values. */
export const TEST_IMAGE_VALUES = resolve(import.meta.dirname, 'image-values.yaml');

export interface RenderOptions {
  /** false: render without TEST_IMAGE_VALUES, as a user who set no image */
  image?: boolean;
  valuesFiles?: string[];
  set?: string[];
  monitoringApi?: boolean;
  namespace?: string;
  chart?: string;
  release?: string;
}

/** `helm template`, parsed into objects; throws with helm's message when it fails. */
export async function render(opts: RenderOptions = {}): Promise<K8s[]> {
  const r = await renderRaw(opts);
  if (r.code !== 0) throw new Error(`helm template failed (${r.code}): ${r.stderr}`);
  return parseManifests(r.stdout);
}

export function renderRaw(opts: RenderOptions = {}): Promise<HelmResult> {
  const args = ['template', opts.release ?? 'gpu', opts.chart ?? CHART, '--namespace', opts.namespace ?? 'monitoring'];
  if (opts.image !== false) args.push('-f', TEST_IMAGE_VALUES);
  for (const f of opts.valuesFiles ?? []) args.push('-f', f);
  for (const s of opts.set ?? []) args.push('--set', s);
  if (opts.monitoringApi) args.push('--api-versions', 'monitoring.coreos.com/v1');
  return helm(args);
}

export function parseManifests(text: string): K8s[] {
  const out: K8s[] = [];
  for (const doc of parseAllDocuments(text)) {
    if (doc.errors.length > 0) throw new Error(`rendered YAML does not parse: ${doc.errors[0].message}`);
    const v = doc.toJS();
    if (v != null) out.push(v as K8s);
  }
  return out;
}

export function ofKind(objs: K8s[], kind: string): K8s[] {
  return objs.filter((o) => o.kind === kind);
}

export function one(objs: K8s[], kind: string, pred: (o: K8s) => boolean = () => true): K8s {
  const found = objs.filter((o) => o.kind === kind && pred(o));
  if (found.length !== 1) throw new Error(`expected one ${kind}, found ${found.length}`);
  return found[0];
}

/** The ci/*-values.yaml scenarios. */
export async function ciValuesFiles(): Promise<string[]> {
  const dir = join(CHART, 'ci');
  return (await readdir(dir)).filter((f) => f.endsWith('-values.yaml')).sort().map((f) => join(dir, f));
}

export function scenario(file: string): string {
  return basename(file).replace(/-values\.yaml$/, '');
}

export async function readYamlFile(path: string): Promise<any> {
  return parseYaml(await readFile(path, 'utf8'));
}

/** Helm's value coalescing, for the test side: maps merge, everything else replaces, null deletes. */
export function mergeValues(base: any, over: any): any {
  if (!isMap(base) || !isMap(over)) return over === undefined ? base : over;
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) {
    if (v === null) delete out[k];
    else out[k] = k in base ? mergeValues(base[k], v) : v;
  }
  return out;
}

function isMap(v: unknown): v is Record<string, any> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A throwaway copy of the chart, for tests that add files to it. */
export async function chartCopy(): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const base = await mkdtemp(join(tmpdir(), 'ds-chart-'));
  const dir = join(base, 'ds-exporter');
  await cp(CHART, dir, { recursive: true });
  return { dir, cleanup: () => rm(base, { recursive: true, force: true }) };
}
