import fs from 'node:fs';
import path from 'node:path';
import { freePorts, LOOPBACK } from './ports.ts';
import { startProcess, type ManagedProcess } from './process.ts';
import type { SearchAttributeType, TemporalLogLevel } from './temporal-config.ts';
import { ensureSearchAttributes, namespaceIsReady, type TemporalTarget } from './temporal-operator.ts';
import { waitUntil } from './wait.ts';

export interface TemporalOptions {
  /** The Temporal CLI binary (findTemporalCli()). */
  cli: string;
  /** SQLite file; omitted = in-memory store, lost at stop. */
  dbFile?: string;
  port?: number;
  uiPort?: number;
  namespace: string;
  logFile: string;
  logLevel?: TemporalLogLevel;
  searchAttributes: Record<string, SearchAttributeType>;
  /** --dynamic-config-value KEY=JSON for each entry, added to the version-check switch-off. */
  dynamicConfig?: Record<string, unknown>;
  /** --sqlite-pragma NAME=VALUE for each entry; only with a dbFile (the in-memory store has no journal). */
  sqlitePragmas?: Record<string, string | number>;
  /** No Web UI. */
  headless?: boolean;
  startTimeoutMs?: number;
  signal?: AbortSignal;
}

export interface TemporalServer {
  /** gRPC front end, host:port. */
  address: string;
  /** Web UI, or null when headless. */
  uiUrl: string | null;
  namespace: string;
  port: number;
  process: ManagedProcess;
  stop(): Promise<void>;
}

/** `temporal server start-dev` on loopback, ready once the namespace answers and the search attributes exist. */
export async function startTemporal(options: TemporalOptions): Promise<TemporalServer> {
  const [sparePort, spareUi, httpPort] = (await freePorts(5)).filter(
    (p) => p !== options.port && p !== options.uiPort,
  );
  const port = options.port ?? (sparePort as number);
  const uiPort = options.uiPort ?? (spareUi as number);
  if (options.dbFile) fs.mkdirSync(path.dirname(options.dbFile), { recursive: true });
  const dynamicConfig = { 'frontend.enableServerVersionCheck': false, ...options.dynamicConfig };
  const args = [
    'server',
    'start-dev',
    '--ip',
    LOOPBACK,
    '--port',
    String(port),
    '--http-port',
    String(httpPort),
    '--namespace',
    options.namespace,
    '--log-level',
    options.logLevel ?? 'warn',
    ...(options.dbFile ? ['--db-filename', options.dbFile] : []),
    ...(options.dbFile
      ? Object.entries(options.sqlitePragmas ?? {}).flatMap(([name, value]) => [
          '--sqlite-pragma',
          `${name}=${value}`,
        ])
      : []),
    ...(options.headless ? ['--headless'] : ['--ui-port', String(uiPort)]),
    ...Object.entries(dynamicConfig).flatMap(([key, value]) => [
      '--dynamic-config-value',
      `${key}=${JSON.stringify(value)}`,
    ]),
    ...Object.entries(options.searchAttributes).flatMap(([name, type]) => [
      '--search-attribute',
      `${name}=${type}`,
    ]),
  ];
  const child = startProcess({ name: 'temporal', command: options.cli, args, logFile: options.logFile });
  const target: TemporalTarget = {
    cli: options.cli,
    address: `${LOOPBACK}:${port}`,
    namespace: options.namespace,
  };
  try {
    await waitUntil(() => namespaceIsReady(target), {
      what: `the Temporal dev server to serve namespace '${options.namespace}' on ${target.address}`,
      timeoutMs: options.startTimeoutMs ?? 90_000,
      intervalMs: 300,
      process: child,
      signal: options.signal,
    });
    await ensureSearchAttributes(target, options.searchAttributes);
  } catch (error) {
    await child.stop();
    throw error;
  }
  return {
    address: target.address,
    uiUrl: options.headless ? null : `http://${LOOPBACK}:${uiPort}`,
    namespace: options.namespace,
    port,
    process: child,
    stop: () => child.stop(),
  };
}
