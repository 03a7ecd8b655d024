import type { EnvReader } from './env-reader.ts';

/** How the API and the worker reach Temporal: a dev server, a self-hosted cluster or Temporal Cloud. */
export interface TemporalSettings {
  address: string;
  namespace: string;
  taskQueue: string;
  /** null: plain gRPC (the dev stack on loopback). */
  tls: TemporalTlsSettings | null;
  /** A file holding an API key sent with every call (Temporal Cloud); null: none. */
  apiKeyFile: string | null;
}

/** TLS to a production Temporal cluster; the files are PEM. */
export interface TemporalTlsSettings {
  /** The CA that signed the server's certificate; null: the system's roots. */
  caFile: string | null;
  /** mTLS: this client's certificate and key, both or neither. */
  clientCertFile: string | null;
  clientKeyFile: string | null;
  /** Overrides the name checked in the server's certificate (SNI); null: the address's host. */
  serverName: string | null;
}

export const TEMPORAL_DEFAULTS = {
  address: '127.0.0.1:7233',
  namespace: 'default',
  taskQueue: 'vm-migration',
} as const;

/** host:port, as gRPC takes it: no scheme, a port. */
const HOST_PORT = /^(?:\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/;

export function readTemporal(r: EnvReader): TemporalSettings {
  const address = r.string('TEMPORAL_ADDRESS', TEMPORAL_DEFAULTS.address).trim();
  if (!HOST_PORT.test(address)) {
    r.problem(`TEMPORAL_ADDRESS must be host:port (no scheme), got '${address}'`);
  }
  const apiKeyFile = r.file('TEMPORAL_API_KEY_FILE');
  return {
    address,
    namespace: r.string('TEMPORAL_NAMESPACE', TEMPORAL_DEFAULTS.namespace).trim(),
    taskQueue: r.string('TEMPORAL_TASK_QUEUE', TEMPORAL_DEFAULTS.taskQueue).trim(),
    tls: readTemporalTls(r, apiKeyFile !== null),
    apiKeyFile,
  };
}

/**
 * TLS is on when TEMPORAL_TLS says so or when any of its files is named (a CA or a client pair means a TLS
 * server); TEMPORAL_TLS=false with files named, or with an API key (sent over TLS only), is a contradiction.
 */
function readTemporalTls(r: EnvReader, apiKey: boolean): TemporalTlsSettings | null {
  const flag = r.optional('TEMPORAL_TLS')?.trim().toLowerCase();
  if (flag !== undefined && !ON_WORDS.includes(flag) && !OFF_WORDS.includes(flag)) {
    r.problem(`TEMPORAL_TLS: expected one of ${[...ON_WORDS, ...OFF_WORDS].join(', ')}, got '${flag}'`);
  }
  const settings: TemporalTlsSettings = {
    caFile: r.file('TEMPORAL_TLS_CA'),
    clientCertFile: r.file('TEMPORAL_TLS_CERT'),
    clientKeyFile: r.file('TEMPORAL_TLS_KEY'),
    serverName: r.optional('TEMPORAL_TLS_SERVER_NAME')?.trim() ?? null,
  };
  const named = Object.values(settings).some((v) => v !== null);
  if (flag !== undefined && OFF_WORDS.includes(flag)) {
    if (named) r.problem('TEMPORAL_TLS is off but TEMPORAL_TLS_CA/CERT/KEY/SERVER_NAME are set');
    if (apiKey)
      r.problem('TEMPORAL_TLS is off but TEMPORAL_API_KEY_FILE is set: an API key goes over TLS only');
    return null;
  }
  r.pair('TEMPORAL_TLS_CERT', 'TEMPORAL_TLS_KEY', 'the mTLS client pair');
  return (flag !== undefined && ON_WORDS.includes(flag)) || named ? settings : null;
}

const ON_WORDS = ['1', 'true', 'yes', 'on'];
const OFF_WORDS = ['0', 'false', 'no', 'off'];
