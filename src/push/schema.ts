import { Ajv, type ErrorObject } from 'ajv';

/** Largest integer a JSON number carries exactly; byte counts and totals stay below it. */
export const MAX_SAFE = Number.MAX_SAFE_INTEGER;
/** Bounds of one push, enforced by the schema. */
export const LIMITS = {
  devices: 64,
  collectiveOps: 32,
  durationsPerOp: 1024,
  labelLength: 128,
  hostLength: 253,
  uuidLength: 96,
  opLength: 64,
  maxDurationSeconds: 3600,
  maxRank: 1_000_000,
  maxPid: 2_147_483_647,
  maxDeviceIndex: 1023,
  stepDurations: 1024,
  maxStepSeconds: 86_400,
  /**
   * FLOPs of one sample. 6 x 2e12 parameters x 1e6 tokens is 1.2e19; anything above 1e20
   * is a unit mistake (FLOPs per second, per batch of the whole job, ...), not a model.
   */
  maxFlopsPerSample: 1e20,
} as const;

/** Precisions whose peak the model FLOPs utilization is computed against. */
export const DTYPES = ['bf16', 'fp8'] as const;

/** Printable text without control characters, bounded (label values). */
const text = (maxLength: number) => ({ type: 'string', minLength: 1, maxLength, pattern: '^[^\\u0000-\\u001f\\u007f\\ud800-\\udfff]+$' });
const count = { type: 'integer', minimum: 0, maximum: MAX_SAFE };

/**
 * The JSON Schema of `POST /api/v1/push` (draft-07). Every object is closed, every
 * string, array and number bounded; docs/push-api.md describes each field.
 */
export const pushSchema = {
  $id: 'https://ds-exporter/push-v1.json',
  type: 'object',
  additionalProperties: false,
  required: ['version', 'reporter'],
  properties: {
    version: { const: 1 },
    reporter: {
      type: 'object',
      additionalProperties: false,
      required: ['job', 'rank', 'pid', 'host'],
      properties: {
        job: text(LIMITS.labelLength),
        rank: { type: 'integer', minimum: 0, maximum: LIMITS.maxRank },
        pid: { type: 'integer', minimum: 1, maximum: LIMITS.maxPid },
        host: text(LIMITS.hostLength),
      },
    },
    timestamp: { type: 'number', exclusiveMinimum: 0, maximum: 1e11 },
    devices: {
      type: 'array',
      maxItems: LIMITS.devices,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['index', 'reserved_bytes', 'allocated_bytes'],
        properties: {
          index: { type: 'integer', minimum: 0, maximum: LIMITS.maxDeviceIndex },
          uuid: { type: 'string', maxLength: LIMITS.uuidLength, pattern: '^[A-Za-z0-9_.:/-]*$' },
          reserved_bytes: count,
          allocated_bytes: count,
          inactive_split_bytes: count,
          largest_free_block_bytes: count,
          num_alloc_retries: count,
          num_ooms: count,
        },
      },
    },
    training: {
      type: 'object',
      additionalProperties: false,
      required: ['samples', 'steps'],
      properties: {
        samples: count,
        steps: count,
        step_durations_seconds: {
          type: 'array',
          minItems: 1,
          maxItems: LIMITS.stepDurations,
          items: { type: 'number', exclusiveMinimum: 0, maximum: LIMITS.maxStepSeconds },
        },
        flops_per_sample: { type: 'number', exclusiveMinimum: 0, maximum: LIMITS.maxFlopsPerSample },
        dtype: { enum: DTYPES },
      },
    },
    collectives: {
      type: 'array',
      maxItems: LIMITS.collectiveOps,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['op', 'durations_seconds'],
        properties: {
          op: { type: 'string', minLength: 1, maxLength: LIMITS.opLength, pattern: '^[A-Za-z][A-Za-z0-9_.:-]*$' },
          durations_seconds: {
            type: 'array',
            minItems: 1,
            maxItems: LIMITS.durationsPerOp,
            items: { type: 'number', minimum: 0, maximum: LIMITS.maxDurationSeconds },
          },
          bytes: count,
        },
      },
    },
  },
} as const;

/** One validated push. */
export interface PushBody {
  version: 1;
  reporter: { job: string; rank: number; pid: number; host: string };
  timestamp?: number;
  devices?: Array<{
    index: number;
    uuid?: string;
    reserved_bytes: number;
    allocated_bytes: number;
    inactive_split_bytes?: number;
    largest_free_block_bytes?: number;
    num_alloc_retries?: number;
    num_ooms?: number;
  }>;
  training?: {
    samples: number;
    steps: number;
    step_durations_seconds?: number[];
    flops_per_sample?: number;
    dtype?: (typeof DTYPES)[number];
  };
  collectives?: Array<{ op: string; durations_seconds: number[]; bytes?: number }>;
}

const ajv = new Ajv({ strict: true, allErrors: false, allowUnionTypes: false });
const validateSchema = ajv.compile(pushSchema);

function describe(e: ErrorObject): string {
  const at = e.instancePath || '/';
  const p = e.params as Record<string, unknown>;
  if (e.keyword === 'additionalProperties') return `${at}: must not have property "${String(p.additionalProperty)}"`;
  if (e.keyword === 'required') return `${at}: must have property "${String(p.missingProperty)}"`;
  if (e.keyword === 'const') return `${at}: must be ${JSON.stringify(p.allowedValue)}`;
  if (e.keyword === 'enum') return `${at}: must be one of ${(p.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}`;
  if (e.keyword === 'minimum' || e.keyword === 'maximum' || e.keyword === 'exclusiveMinimum') {
    return `${at}: must be ${String(p.comparison)} ${String(p.limit)}`;
  }
  if (e.keyword === 'pattern') return `${at}: must be printable text (${e.keyword} ${String(p.pattern)})`;
  return `${at}: ${e.message ?? 'invalid'}`;
}

/** A push that failed validation; `message` names the field (`/devices/0/reserved_bytes: must be >= 0`). */
export class PushValidationError extends Error {
  override name = 'PushValidationError';
}

/**
 * Validates a parsed JSON value against the schema and the rules a schema cannot say
 * (allocated <= reserved, one entry per device index). Throws PushValidationError.
 */
export function validatePush(value: unknown): PushBody {
  if (!validateSchema(value)) {
    const e = validateSchema.errors?.[0];
    throw new PushValidationError(e ? describe(e) : '/: invalid');
  }
  const body = value as unknown as PushBody;
  const seen = new Set<number>();
  body.devices?.forEach((d, i) => {
    if (seen.has(d.index)) throw new PushValidationError(`/devices/${i}/index: duplicate device index ${d.index}`);
    seen.add(d.index);
    if (d.allocated_bytes > d.reserved_bytes) throw new PushValidationError(`/devices/${i}/allocated_bytes: must be <= reserved_bytes`);
  });
  const t = body.training;
  if (t?.dtype !== undefined && t.flops_per_sample === undefined) throw new PushValidationError('/training/dtype: only meaningful with flops_per_sample');
  const ops = new Set<string>();
  body.collectives?.forEach((c, i) => {
    if (ops.has(c.op)) throw new PushValidationError(`/collectives/${i}/op: duplicate op "${c.op}"`);
    ops.add(c.op);
  });
  return body;
}
