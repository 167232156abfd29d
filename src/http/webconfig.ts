import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { ConfigError, describeError } from '../core/errors.js';

/** TLS settings in Node's terms, with the PEM material already read. */
export interface TlsSettings {
  readonly cert: string;
  readonly key: string;
  readonly ca?: string;
  readonly requestCert: boolean;
  /** A client certificate must be presented (RequireAnyClientCert, RequireAndVerifyClientCert). */
  readonly requireCert: boolean;
  readonly rejectUnauthorized: boolean;
  readonly minVersion: 'TLSv1' | 'TLSv1.1' | 'TLSv1.2' | 'TLSv1.3';
  readonly maxVersion?: 'TLSv1' | 'TLSv1.1' | 'TLSv1.2' | 'TLSv1.3';
}

/** A validated exporter-toolkit web configuration. */
export interface WebConfig {
  readonly tls?: TlsSettings;
  /** user → bcrypt hash. */
  readonly basicAuthUsers: ReadonlyMap<string, string>;
  readonly headers: Readonly<Record<string, string>>;
}

const TLS_VERSIONS: Record<string, TlsSettings['minVersion']> = { TLS10: 'TLSv1', TLS11: 'TLSv1.1', TLS12: 'TLSv1.2', TLS13: 'TLSv1.3' };
const CLIENT_AUTH = ['NoClientCert', 'RequestClientCert', 'RequireAnyClientCert', 'VerifyClientCertIfGiven', 'RequireAndVerifyClientCert'] as const;
const TOP_KEYS = ['tls_server_config', 'http_server_config', 'basic_auth_users'];
const TLS_KEYS = ['cert_file', 'key_file', 'cert', 'key', 'client_auth_type', 'client_ca_file', 'client_ca', 'min_version', 'max_version', 'cipher_suites', 'curve_preferences', 'prefer_server_cipher_suites', 'client_allowed_sans'];
const HTTP_KEYS = ['headers', 'http2'];
const MAX_FILE_BYTES = 1 << 20;

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function checkKeys(obj: Record<string, unknown>, allowed: string[], where: string): void {
  for (const k of Object.keys(obj)) if (!allowed.includes(k)) throw new ConfigError(`${where}: unknown field "${k}"`);
}

function str(v: unknown, where: string): string {
  if (typeof v !== 'string' || v === '') throw new ConfigError(`${where}: must be a non-empty string`);
  return v;
}

/**
 * Parses the text of a web config file (the Prometheus exporter-toolkit format). Pure:
 * `readRelative` reads the files it names (cert, key, client CA). Throws ConfigError
 * naming the field.
 */
export function parseWebConfig(text: string, readRelative: (path: string) => string): WebConfig {
  if (text.length > MAX_FILE_BYTES) throw new ConfigError(`web config: larger than ${MAX_FILE_BYTES} bytes`);
  let doc: unknown;
  try {
    doc = parseYaml(text, { maxAliasCount: 10 });
  } catch (err) {
    throw new ConfigError(`web config: invalid YAML: ${describeError(err)}`);
  }
  if (doc === null || doc === undefined) return { basicAuthUsers: new Map(), headers: {} };
  if (!isObject(doc)) throw new ConfigError('web config: top level must be a mapping');
  checkKeys(doc, TOP_KEYS, 'web config');

  const users = new Map<string, string>();
  if (doc.basic_auth_users !== undefined && doc.basic_auth_users !== null) {
    if (!isObject(doc.basic_auth_users)) throw new ConfigError('web config: basic_auth_users must be a mapping of user to bcrypt hash');
    for (const [user, hash] of Object.entries(doc.basic_auth_users)) {
      if (typeof hash !== 'string' || !/^\$2[abxy]?\$\d\d\$[./A-Za-z0-9]{53}$/.test(hash)) {
        throw new ConfigError(`web config: basic_auth_users.${user}: not a bcrypt hash ($2y$/$2b$/$2a$)`);
      }
      users.set(user, hash);
    }
  }

  const headers: Record<string, string> = {};
  if (doc.http_server_config !== undefined && doc.http_server_config !== null) {
    if (!isObject(doc.http_server_config)) throw new ConfigError('web config: http_server_config must be a mapping');
    checkKeys(doc.http_server_config, HTTP_KEYS, 'web config: http_server_config');
    const h = doc.http_server_config.headers;
    if (h !== undefined && h !== null) {
      if (!isObject(h)) throw new ConfigError('web config: http_server_config.headers must be a mapping');
      for (const [k, v] of Object.entries(h)) {
        if (!/^[A-Za-z0-9-]+$/.test(k) || typeof v !== 'string' || /[\r\n]/.test(v)) throw new ConfigError(`web config: http_server_config.headers.${k}: invalid header`);
        headers[k] = v;
      }
    }
  }

  let tls: TlsSettings | undefined;
  const t = doc.tls_server_config;
  if (t !== undefined && t !== null) {
    const w = 'web config: tls_server_config';
    if (!isObject(t)) throw new ConfigError(`${w} must be a mapping`);
    checkKeys(t, TLS_KEYS, w);
    const read = (field: string, path: unknown) => {
      const p = str(path, `${w}.${field}`);
      try {
        return readRelative(p);
      } catch (err) {
        throw new ConfigError(`${w}.${field}: cannot read "${p}": ${describeError(err)}`);
      }
    };
    const cert = t.cert !== undefined ? str(t.cert, `${w}.cert`) : t.cert_file !== undefined ? read('cert_file', t.cert_file) : undefined;
    const key = t.key !== undefined ? str(t.key, `${w}.key`) : t.key_file !== undefined ? read('key_file', t.key_file) : undefined;
    if (!cert) throw new ConfigError(`${w}: cert_file (or cert) is required`);
    if (!key) throw new ConfigError(`${w}: key_file (or key) is required`);
    if (!/-----BEGIN [A-Z ]*CERTIFICATE-----/.test(cert)) throw new ConfigError(`${w}.cert_file: no PEM certificate found`);
    if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(key)) throw new ConfigError(`${w}.key_file: no PEM private key found`);
    const ca = t.client_ca !== undefined ? str(t.client_ca, `${w}.client_ca`) : t.client_ca_file !== undefined ? read('client_ca_file', t.client_ca_file) : undefined;
    const auth = (t.client_auth_type ?? (ca ? 'RequireAndVerifyClientCert' : 'NoClientCert')) as string;
    if (!(CLIENT_AUTH as readonly string[]).includes(auth)) throw new ConfigError(`${w}.client_auth_type: expected one of ${CLIENT_AUTH.join(', ')}, got "${auth}"`);
    if ((auth === 'RequireAndVerifyClientCert' || auth === 'VerifyClientCertIfGiven') && !ca) throw new ConfigError(`${w}: client_auth_type ${auth} needs client_ca_file`);
    const version = (field: string, v: unknown) => {
      if (v === undefined) return undefined;
      const r = TLS_VERSIONS[String(v)];
      if (!r) throw new ConfigError(`${w}.${field}: expected one of ${Object.keys(TLS_VERSIONS).join(', ')}, got "${String(v)}"`);
      return r;
    };
    tls = {
      cert,
      key,
      ca,
      requestCert: auth !== 'NoClientCert',
      requireCert: auth === 'RequireAnyClientCert' || auth === 'RequireAndVerifyClientCert',
      // Node verifies when rejectUnauthorized is set; "if given" cases are checked per request.
      rejectUnauthorized: auth === 'RequireAndVerifyClientCert',
      minVersion: version('min_version', t.min_version) ?? 'TLSv1.2',
      maxVersion: version('max_version', t.max_version),
    };
  }
  return { tls, basicAuthUsers: users, headers };
}

/** Reads and parses a web config file; relative paths inside it are relative to the file. */
export function loadWebConfig(path: string): WebConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`--web.config.file: cannot read "${path}": ${describeError(err)}`);
  }
  try {
    return parseWebConfig(text, (p) => readFileSync(isAbsolute(p) ? p : join(dirname(path), p), 'utf8'));
  } catch (err) {
    if (err instanceof ConfigError) throw new ConfigError(`--web.config.file ${path}: ${err.message.replace(/^web config: /, '')}`);
    throw err;
  }
}
