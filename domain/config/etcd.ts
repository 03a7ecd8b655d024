import type { IOptions } from 'etcd3';
import { ConfigError, type EnvReader, urlProblem } from './env-reader.ts';

/**
 * etcd, where every agent keeps its lease-backed health key: endpoints, key prefix, client TLS (the cluster's
 * CA, and a client pair for `--client-cert-auth`) and password auth (`etcdctl user add`).
 */
export interface EtcdSettings {
  endpoints: string[];
  prefix: string;
  /** null: plain (http:// endpoints) or, for https:// endpoints, the system's roots and no client pair. */
  tls?: EtcdTlsSettings | null;
  auth?: EtcdAuth | null;
}

export interface EtcdTlsSettings {
  caFile: string;
  /** Both or neither. */
  clientCertFile: string | null;
  clientKeyFile: string | null;
}

export interface EtcdAuth {
  username: string;
  password: string;
}

export const ETCD_DEFAULTS = {
  endpoints: ['http://127.0.0.1:2379'],
  prefix: 'vmmig',
} as const;

/** The whole URL must name a port: etcd listens on 2379, not on the scheme's 80 or 443. */
const WITH_PORT = /^https?:\/\/(?:\[[^\]]+\]|[^/:@]+):\d{1,5}\/?$/;
const PREFIX = /^[A-Za-z0-9._-]+$/;

export function readEtcd(r: EnvReader): EtcdSettings {
  const endpoints = r.list('ETCD_ENDPOINTS', ETCD_DEFAULTS.endpoints);
  if (endpoints.length === 0) r.problem('ETCD_ENDPOINTS lists no endpoint');
  for (const endpoint of endpoints) {
    const problem = urlProblem(endpoint, ['http:', 'https:']);
    if (problem !== null) r.problem(`ETCD_ENDPOINTS: ${problem}`);
    else if (!WITH_PORT.test(endpoint)) r.problem(`ETCD_ENDPOINTS: '${endpoint}' must be scheme://host:port`);
  }
  const secure = endpoints.filter((e) => e.startsWith('https://')).length;
  if (secure > 0 && secure < endpoints.length) {
    r.problem('ETCD_ENDPOINTS mixes http:// and https:// endpoints: one cluster speaks one of them');
  }
  const prefix = r.string('ETCD_PREFIX', ETCD_DEFAULTS.prefix).trim();
  if (!PREFIX.test(prefix))
    r.problem(`ETCD_PREFIX must be letters, digits, '.', '_' or '-', got '${prefix}'`);
  return { endpoints, prefix, tls: readEtcdTls(r, secure > 0), auth: readEtcdAuth(r) };
}

function readEtcdTls(r: EnvReader, https: boolean): EtcdTlsSettings | null {
  const caFile = r.file('ETCD_TLS_CA');
  const clientCertFile = r.file('ETCD_TLS_CERT');
  const clientKeyFile = r.file('ETCD_TLS_KEY');
  r.pair('ETCD_TLS_CERT', 'ETCD_TLS_KEY', 'the client certificate pair');
  const named = caFile ?? clientCertFile ?? clientKeyFile;
  if (named === null) return null;
  if (!https) r.problem('ETCD_TLS_CA/CERT/KEY are set but ETCD_ENDPOINTS are not https://');
  if (caFile === null) {
    r.problem('ETCD_TLS_CA is required with ETCD_TLS_CERT/KEY (the CA of the etcd cluster)');
    return null;
  }
  return { caFile, clientCertFile, clientKeyFile };
}

function readEtcdAuth(r: EnvReader): EtcdAuth | null {
  r.pair('ETCD_USERNAME', 'ETCD_PASSWORD', 'etcd password auth');
  const username = r.optional('ETCD_USERNAME');
  const password = r.optional('ETCD_PASSWORD');
  return username !== undefined && password !== undefined ? { username, password } : null;
}

/**
 * The etcd3 client options for these settings; `read` reads a named file (readFileSync), and a failure names
 * its variable. Every client of the project is made from here, so TLS and auth reach all of them.
 */
export function etcdClientOptions(settings: EtcdSettings, read: (file: string) => Buffer): IOptions {
  const options: IOptions = { hosts: settings.endpoints, dialTimeout: 3000 };
  const { tls, auth } = settings;
  if (tls) {
    const problems: string[] = [];
    const file = (variable: string, path: string | null): Buffer | undefined => {
      if (path === null) return undefined;
      try {
        return read(path);
      } catch (error) {
        problems.push(`${variable}: cannot read ${path}: ${(error as Error).message}`);
        return undefined;
      }
    };
    const rootCertificate = file('ETCD_TLS_CA', tls.caFile);
    const certChain = file('ETCD_TLS_CERT', tls.clientCertFile);
    const privateKey = file('ETCD_TLS_KEY', tls.clientKeyFile);
    if (problems.length > 0 || rootCertificate === undefined) throw new ConfigError(problems);
    options.credentials = {
      rootCertificate,
      ...(certChain && privateKey ? { certChain, privateKey } : {}),
    };
  }
  if (auth) options.auth = { username: auth.username, password: auth.password };
  return options;
}

/** The lease-backed liveness key of a host, as in the Cloudpods seed: /<prefix>/host/health/<host_id>. */
export function hostHealthKey(prefix: string, hostId: string): string {
  return `/${prefix}/host/health/${hostId}`;
}

export function hostHealthPrefix(prefix: string): string {
  return `/${prefix}/host/health/`;
}

/** The host watch's cluster-wide "processed up to" etcd revision, beside (not under) the health keys. */
export function hostWatchRevisionKey(prefix: string): string {
  return `/${prefix}/host/watch-revision`;
}
