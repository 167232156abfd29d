import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import type { FastifyError, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { PushValidationError, validatePush } from '../push/schema.js';
import { PushRejection, type PushState } from '../push/state.js';
import { ConfigError, describeError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';

const digest = (s: string) => createHash('sha256').update(s).digest();

/**
 * Bearer tokens from a file (one token per line; blank lines and `#` comments ignored).
 * Read at start (unreadable or empty: ConfigError) and again whenever the file changes;
 * a later unreadable or empty file keeps the last good tokens and logs why.
 */
export class TokenFile {
  private tokens: Buffer[] = [];
  private stamp = '';
  private lastCheck = -Infinity;

  constructor(
    readonly path: string,
    private readonly logger: Logger,
    private readonly now: () => number = Date.now,
    /** Minimum time between two stat() calls of the file. */
    private readonly checkEveryMs = 1000,
  ) {
    const err = this.load();
    if (err) throw new ConfigError(`--push.token-file: ${err}`);
  }

  private load(): string | undefined {
    let stamp: string;
    let text: string;
    try {
      const st = statSync(this.path);
      stamp = `${st.ino}:${st.size}:${st.mtimeMs}`;
      if (stamp === this.stamp) return undefined;
      text = readFileSync(this.path, 'utf8');
    } catch (err) {
      return `cannot read ${this.path}: ${describeError(err)}`;
    }
    const tokens = text.split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
    if (tokens.length === 0) return `${this.path} holds no token`;
    this.tokens = tokens.map(digest);
    this.stamp = stamp;
    return undefined;
  }

  /** Re-reads the file when it changed (at most once per `checkEveryMs`). */
  refresh(): void {
    const now = this.now();
    if (now - this.lastCheck < this.checkEveryMs) return;
    this.lastCheck = now;
    const err = this.load();
    if (err) this.logger.warn('push token file unusable; keeping the previous tokens', { err });
  }

  /** Constant-time check of an `Authorization` header value. */
  check(header: string | undefined): boolean {
    this.refresh();
    const m = /^Bearer[ ]+(\S+)\s*$/i.exec(header ?? '');
    // Hash first: timingSafeEqual needs equal lengths, and hashing hides the token length.
    const given = digest(m ? m[1] : '');
    let ok = false;
    for (const t of this.tokens) ok = timingSafeEqual(given, t) || ok;
    return ok && !!m;
  }
}

export interface PushPluginOptions {
  readonly state: PushState;
  readonly maxBodyBytes: number;
  readonly tokens?: TokenFile;
  readonly logger: Logger;
}

function fail(reply: FastifyReply, status: number, error: string) {
  return reply.code(status).header('cache-control', 'no-store').send({ error });
}

/**
 * `POST /api/v1/push`: JSON from reporters inside training and serving processes.
 * Auth runs before the body is read; the body is size-limited, parsed, validated against
 * the schema and applied whole or not at all.
 */
export const pushPlugin: FastifyPluginAsync<PushPluginOptions> = async (app, opts) => {
  const { state, maxBodyBytes, tokens, logger } = opts;

  // Only JSON, parsed by us (this plugin's scope only), so every failure has our message.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'string', bodyLimit: maxBodyBytes }, (_req: FastifyRequest, body: string | Buffer, done) => {
    try {
      done(null, JSON.parse(String(body)));
    } catch (err) {
      done(Object.assign(new Error(`body is not valid JSON: ${describeError(err).slice(0, 200)}`), { statusCode: 400 }), undefined);
    }
  });

  app.setErrorHandler((err: FastifyError, _req, reply) => {
    switch (err.code) {
      case 'FST_ERR_CTP_BODY_TOO_LARGE':
        return fail(reply, 413, `body larger than ${maxBodyBytes} bytes (--push.max-body-bytes)`);
      case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
        return err.statusCode === 415 ? fail(reply, 415, 'content type must be application/json') : fail(reply, 400, err.message);
      case 'FST_ERR_CTP_EMPTY_JSON_BODY':
        return fail(reply, 400, 'body is empty');
    }
    const status = err.statusCode && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500;
    if (status >= 500) logger.error('push failed', { err: describeError(err) });
    return fail(reply, status, status >= 500 ? 'internal error' : err.message);
  });

  app.addHook('onResponse', async (_req, reply) => state.count(reply.statusCode));

  app.post('/api/v1/push', {
    bodyLimit: maxBodyBytes,
    onRequest: async (req, reply) => {
      if (tokens && !tokens.check(req.headers.authorization)) {
        reply.header('www-authenticate', 'Bearer realm="ds-exporter"');
        return fail(reply, 401, req.headers.authorization ? 'invalid bearer token' : 'bearer token required (--push.token-file is set)');
      }
    },
  }, async (req, reply) => {
    try {
      state.accept(validatePush(req.body));
    } catch (err) {
      if (err instanceof PushValidationError) return fail(reply, 400, err.message);
      if (err instanceof PushRejection) {
        if (err.statusCode === 429) reply.header('retry-after', String(Math.ceil(state.opts.ttlMs / 1000)));
        return fail(reply, err.statusCode, err.message);
      }
      throw err;
    }
    return reply.code(202).header('cache-control', 'no-store').send({ status: 'accepted' });
  });
};
