import type { ConnectionOptions } from 'node:tls';
import { ConfigError, EnvReader, urlProblem } from './env-reader.ts';

/**
 * PostgreSQL: DATABASE_URL with libpq's `sslmode`, and the TLS files beside it (DATABASE_TLS_CA, and a client
 * pair DATABASE_TLS_CERT + DATABASE_TLS_KEY for certificate login). node-postgres would read `sslrootcert`
 * and friends from the URL itself, but with its own meaning of `require`; here they are refused and the
 * modes mean what libpq says.
 */
export interface DatabaseSettings {
  /** The URL without its TLS parameters: what node-postgres is given, with `ssl` beside it. */
  url: string;
  sslMode: SslMode;
  caFile: string | null;
  clientCertFile: string | null;
  clientKeyFile: string | null;
}

export const sslModes = ['disable', 'require', 'verify-ca', 'verify-full'] as const;
export type SslMode = (typeof sslModes)[number];

/** TLS parameters node-postgres reads from a URL; ours come from sslmode and the DATABASE_TLS_* files. */
const URL_TLS_FILES: Record<string, string> = {
  sslrootcert: 'DATABASE_TLS_CA',
  sslcert: 'DATABASE_TLS_CERT',
  sslkey: 'DATABASE_TLS_KEY',
};
const URL_TLS_OTHERS = ['ssl', 'uselibpqcompat'];

export function readDatabase(r: EnvReader): DatabaseSettings {
  const raw = r.required('DATABASE_URL', 'postgres://user:password@host:5432/database?sslmode=verify-full');
  const settings: DatabaseSettings = {
    url: raw,
    sslMode: 'disable',
    caFile: r.file('DATABASE_TLS_CA'),
    clientCertFile: r.file('DATABASE_TLS_CERT'),
    clientKeyFile: r.file('DATABASE_TLS_KEY'),
  };
  r.pair('DATABASE_TLS_CERT', 'DATABASE_TLS_KEY', 'the client certificate pair');
  if (raw === '') return settings;
  const problem = urlProblem(raw, ['postgres:', 'postgresql:']);
  if (problem !== null) {
    // The URL may hold a password: name the variable, not the value.
    r.problem(`DATABASE_URL is not a postgres:// or postgresql:// URL`);
    return settings;
  }
  const url = new URL(raw);
  const mode = url.searchParams.get('sslmode') ?? 'disable';
  if ((sslModes as readonly string[]).includes(mode)) {
    settings.sslMode = mode as SslMode;
  } else {
    r.problem(
      `DATABASE_URL: sslmode must be one of ${sslModes.join(', ')}, got '${mode}'` +
        (mode === 'prefer' || mode === 'allow'
          ? ' (node-postgres cannot fall back between TLS and plain)'
          : ''),
    );
  }
  for (const [param, variable] of Object.entries(URL_TLS_FILES)) {
    if (url.searchParams.has(param))
      r.problem(`DATABASE_URL: ${param} is not read here; name the file in ${variable}`);
  }
  for (const param of URL_TLS_OTHERS) {
    if (url.searchParams.has(param)) r.problem(`DATABASE_URL: ${param} is not read here; use sslmode`);
  }
  const tlsFiles = settings.caFile ?? settings.clientCertFile ?? settings.clientKeyFile;
  if (settings.sslMode === 'disable' && tlsFiles !== null) {
    r.problem(
      'DATABASE_TLS_CA/CERT/KEY are set but DATABASE_URL has no sslmode (or sslmode=disable): add sslmode=verify-full',
    );
  }
  if (settings.sslMode === 'verify-ca' && settings.caFile === null) {
    r.problem(
      'DATABASE_TLS_CA is required with sslmode=verify-ca (any certificate of a public CA would pass)',
    );
  }
  url.searchParams.delete('sslmode');
  settings.url = url.toString();
  return settings;
}

/** The settings of a URL alone (tests, tools): no TLS files. Throws every problem. */
export function databaseSettingsFromUrl(url: string): DatabaseSettings {
  const r = new EnvReader({ DATABASE_URL: url });
  return r.result(readDatabase(r));
}

/**
 * node-postgres's `ssl` for these settings, libpq's meaning: `require` encrypts without checking the server
 * (with a CA named, it checks the chain, as libpq does), `verify-ca` checks the chain only, `verify-full`
 * the chain and the host name. `read` reads a named file (readFileSync); a failure names the variable.
 */
export function postgresSsl(
  settings: DatabaseSettings,
  read: (file: string) => Buffer,
): false | ConnectionOptions {
  if (settings.sslMode === 'disable') return false;
  const ssl: ConnectionOptions = {};
  const problems: string[] = [];
  const file = (variable: string, path: string | null): string | undefined => {
    if (path === null) return undefined;
    try {
      return read(path).toString('utf8');
    } catch (error) {
      problems.push(`${variable}: cannot read ${path}: ${(error as Error).message}`);
      return undefined;
    }
  };
  const ca = file('DATABASE_TLS_CA', settings.caFile);
  const cert = file('DATABASE_TLS_CERT', settings.clientCertFile);
  const key = file('DATABASE_TLS_KEY', settings.clientKeyFile);
  if (problems.length > 0) throw new ConfigError(problems);
  if (ca !== undefined) ssl.ca = ca;
  if (cert !== undefined && key !== undefined) Object.assign(ssl, { cert, key });
  const checkChain = settings.sslMode !== 'require' || ca !== undefined;
  ssl.rejectUnauthorized = checkChain;
  // Any name passes: the chain is checked, the host name is not.
  if (checkChain && settings.sslMode !== 'verify-full') ssl.checkServerIdentity = () => undefined;
  return ssl;
}
