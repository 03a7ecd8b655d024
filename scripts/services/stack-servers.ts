/**
 * The one way to start a stack's infrastructure: the Temporal dev server, PostgreSQL, etcd and InfluxDB,
 * each only if the plan names it, in parallel (each mostly waits for its server), data and logs under one
 * root. The launcher (`npm start`, launcher/infrastructure.ts), the integration tests' global setup and the
 * benchmarks (bench/lib/servers.ts) all start their servers here; what differs between them is in the plan.
 * If one server fails to start, those that did are stopped before the error is rethrown.
 */
import path from 'node:path';
import { startEtcd, type EtcdOptions, type EtcdServer } from './etcd.ts';
import { startInflux, type InfluxOptions, type InfluxServer } from './influx.ts';
import { startPostgres, type PostgresOptions, type PostgresServer } from './postgres.ts';
import { findTemporalCli } from './temporal-cli.ts';
import { loadTemporalDevConfig } from './temporal-config.ts';
import { startTemporal, type TemporalOptions, type TemporalServer } from './temporal.ts';

interface Servers {
  temporal: TemporalServer;
  postgres: PostgresServer;
  etcd: EtcdServer;
  influx: InfluxServer;
}
export type StackServerName = keyof Servers;

/** Where each server logs, under <root>/logs: named after the process. */
export const SERVER_LOG_NAMES: Record<StackServerName, string> = {
  temporal: 'temporal',
  postgres: 'postgres',
  etcd: 'etcd',
  influx: 'influxd',
};

/** Where a server keeps its data; unset: <root>/<server name>. */
type DataDir = { dir?: string };

/**
 * Each server's own options (scripts/services/<server>.ts) less what the plan decides for all: log file,
 * data dir under the root, abort signal, and Temporal's settings from temporal.dev.yaml. Unset ports are free
 * ones; Temporal without `dbFile` keeps an in-memory store (tests), `headless` has no Web UI; PostgreSQL with
 * `durable: false` trades crash safety for speed (tests).
 */
export interface StackServerOptions {
  temporal: Omit<
    TemporalOptions,
    Decided | 'cli' | 'namespace' | 'logLevel' | 'searchAttributes' | 'dynamicConfig' | 'sqlitePragmas'
  > & {
    /** Default findTemporalCli(). */
    cli?: string;
    /** Default temporal.dev.yaml's. */
    namespace?: string;
  };
  postgres: Omit<PostgresOptions, Decided | 'dir'> & DataDir;
  etcd: Omit<EtcdOptions, Decided | 'dir'> & DataDir;
  influx: Omit<InfluxOptions, Decided | 'dir'> & DataDir;
}
type Decided = 'logFile' | 'signal';

export type StackServerPlan = {
  root: string;
  /** Aborted: every wait gives up at once (Ctrl-C in the launcher). */
  signal?: AbortSignal;
} & { [K in StackServerName]?: StackServerOptions[K] };

/** The servers the plan named (possibly-absent ones when the plan's entry may be undefined), and one stop for all. */
export type StackServers<P extends StackServerPlan> = {
  [K in StackServerName & keyof P]: undefined extends P[K] ? Servers[K] | undefined : Servers[K];
} & {
  /** Stops every server, all at once: nothing of the stack talks to them any more. */
  stop(): Promise<void>;
};

export async function startStackServers<const P extends StackServerPlan>(plan: P): Promise<StackServers<P>> {
  const starts = startEach(plan);
  const results = await Promise.allSettled(starts.map(([, started]) => started));
  const stop = async (): Promise<void> => {
    await Promise.allSettled(results.map((r) => (r.status === 'fulfilled' ? r.value.stop() : undefined)));
  };
  const failure = results.find((r) => r.status === 'rejected');
  if (failure) {
    await stop();
    throw failure.reason;
  }
  const servers = Object.fromEntries(
    starts.map(([name], i) => [name, (results[i] as PromiseFulfilledResult<unknown>).value]),
  );
  return { ...servers, stop } as StackServers<P>;
}

type Start = [StackServerName, Promise<{ stop(): Promise<void> }>];

function startEach(plan: StackServerPlan): Start[] {
  const { root, signal } = plan;
  const logFile = (name: StackServerName) => path.join(root, 'logs', `${SERVER_LOG_NAMES[name]}.log`);
  const dir = (name: StackServerName, given: string | undefined) => given ?? path.join(root, name);
  const starts: Start[] = [];
  if (plan.temporal) {
    const { cli, namespace, ...options } = plan.temporal;
    const config = loadTemporalDevConfig();
    starts.push([
      'temporal',
      startTemporal({
        ...options,
        cli: cli ?? findTemporalCli(),
        namespace: namespace ?? config.namespace,
        logFile: logFile('temporal'),
        logLevel: config.logLevel,
        searchAttributes: config.searchAttributes,
        dynamicConfig: config.dynamicConfig,
        sqlitePragmas: config.sqlitePragmas,
        signal,
      }),
    ]);
  }
  if (plan.postgres) {
    const { dir: given, ...options } = plan.postgres;
    starts.push([
      'postgres',
      startPostgres({ ...options, dir: dir('postgres', given), logFile: logFile('postgres'), signal }),
    ]);
  }
  if (plan.etcd) {
    const { dir: given, ...options } = plan.etcd;
    starts.push([
      'etcd',
      startEtcd({ ...options, dir: dir('etcd', given), logFile: logFile('etcd'), signal }),
    ]);
  }
  if (plan.influx) {
    const { dir: given, ...options } = plan.influx;
    starts.push([
      'influx',
      startInflux({ ...options, dir: dir('influx', given), logFile: logFile('influx'), signal }),
    ]);
  }
  return starts;
}
