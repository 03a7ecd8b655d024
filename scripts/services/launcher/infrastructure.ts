import path from 'node:path';
import { DEFAULTS, etcdSettings, influxSettings } from '../../../domain/config.ts';
import { startEtcd } from '../etcd.ts';
import { ensureInfluxDatabase } from '../influx-database.ts';
import { startInflux } from '../influx.ts';
import { isPortFree } from '../ports.ts';
import { ensureDatabase } from '../postgres-database.ts';
import { startPostgres } from '../postgres.ts';
import { findTemporalCli } from '../temporal-cli.ts';
import { loadTemporalDevConfig } from '../temporal-config.ts';
import { ensureSearchAttributes } from '../temporal-operator.ts';
import { startTemporal } from '../temporal.ts';
import { LaunchError, type LaunchContext } from './context.ts';
import { logFile } from './data-layout.ts';
import type { StoppableHandle } from './running-stack.ts';

export interface Infrastructure {
  temporal: { address: string; uiUrl: string | null; namespace: string };
  /** URL of the vmmig database. */
  databaseUrl: string;
  etcdEndpoints: string[];
  influxUrl: string;
}

export const DEV_DATABASE = 'vmmig';

/**
 * Temporal, PostgreSQL, etcd and InfluxDB, each started here unless the environment points at an
 * existing one (TEMPORAL_ADDRESS, DATABASE_URL, ETCD_ENDPOINTS, INFLUX_URL). The four start in
 * parallel: each mostly waits for its server, and two cores are enough for that.
 */
export async function startInfrastructure(ctx: LaunchContext): Promise<Infrastructure> {
  const started: Started = {};
  const results = await Promise.allSettled([
    temporalStep(ctx, started),
    postgresStep(ctx, started),
    etcdStep(ctx, started),
    influxStep(ctx, started),
  ] as const);
  // Registered in a fixed order, whatever finished first, so that Ctrl-C stops them in reverse.
  for (const name of SERVER_NAMES) {
    const handle = started[name];
    if (handle) ctx.stack.add(name, handle);
  }
  const failed = results.find((r) => r.status === 'rejected');
  if (failed) throw failed.reason;
  const [temporal, databaseUrl, etcdEndpoints, influxUrl] = results.map(
    (r) => (r as PromiseFulfilledResult<unknown>).value,
  ) as [Infrastructure['temporal'], string, string[], string];
  return { temporal, databaseUrl, etcdEndpoints, influxUrl };
}

const SERVER_NAMES = ['temporal', 'postgres', 'etcd', 'influxd'] as const;
type ServerName = (typeof SERVER_NAMES)[number];
type Started = Partial<Record<ServerName, StoppableHandle>>;

async function temporalStep(ctx: LaunchContext, started: Started): Promise<Infrastructure['temporal']> {
  const config = loadTemporalDevConfig();
  const namespace = ctx.env.TEMPORAL_NAMESPACE || config.namespace;
  if (ctx.env.TEMPORAL_ADDRESS) {
    ctx.say(`Temporal: using TEMPORAL_ADDRESS=${ctx.env.TEMPORAL_ADDRESS} (no own dev server)`);
    await registerSearchAttributesOn(ctx, ctx.env.TEMPORAL_ADDRESS, namespace, config.searchAttributes);
    return { address: ctx.env.TEMPORAL_ADDRESS, uiUrl: null, namespace };
  }
  for (const [what, port] of [
    ['gRPC port', config.port],
    ['Web UI port', config.uiPort],
  ] as const) {
    if (!(await isPortFree(port))) {
      throw new LaunchError(
        `Temporal ${what} ${port} (temporal.dev.yaml) is in use: another dev stack running? ` +
          'Stop it, change the port in temporal.dev.yaml, or set TEMPORAL_ADDRESS to use that server.',
      );
    }
  }
  ctx.say(`Temporal: starting the dev server on 127.0.0.1:${config.port}`);
  const server = await startTemporal({
    cli: findTemporalCli(ctx.env),
    dbFile: path.resolve(ctx.layout.root, config.dbFile),
    port: config.port,
    uiPort: config.uiPort,
    namespace,
    logFile: logFile(ctx.layout, 'temporal'),
    logLevel: config.logLevel,
    searchAttributes: config.searchAttributes,
    dynamicConfig: config.dynamicConfig,
    signal: ctx.signal,
  });
  started.temporal = server;
  return { address: server.address, uiUrl: server.uiUrl, namespace };
}

async function registerSearchAttributesOn(
  ctx: LaunchContext,
  address: string,
  namespace: string,
  wanted: Parameters<typeof ensureSearchAttributes>[1],
): Promise<void> {
  try {
    const added = await ensureSearchAttributes({ cli: findTemporalCli(ctx.env), address, namespace }, wanted);
    if (added.length > 0) ctx.say(`Temporal: registered search attributes ${added.join(', ')}`);
  } catch (error) {
    ctx.say(
      `Temporal: WARNING: could not check the custom search attributes on ${address}: ${String(error)}`,
    );
  }
}

async function postgresStep(ctx: LaunchContext, started: Started): Promise<string> {
  if (ctx.env.DATABASE_URL) {
    ctx.say('PostgreSQL: using DATABASE_URL (no own cluster)');
    return ctx.env.DATABASE_URL;
  }
  const port = ctx.ports.postgres;
  ctx.say(`PostgreSQL: starting on 127.0.0.1:${port}`);
  const server = await startPostgres({
    dir: ctx.layout.postgres,
    port,
    logFile: logFile(ctx.layout, 'postgres'),
    signal: ctx.signal,
  });
  started.postgres = server;
  if (server.clusterDir !== ctx.layout.postgres) {
    ctx.say(
      `PostgreSQL: the postgres user cannot reach ${ctx.layout.postgres}: cluster kept in ${server.clusterDir}`,
    );
  }
  return ensureDatabase(server.url, DEV_DATABASE);
}

async function etcdStep(ctx: LaunchContext, started: Started): Promise<string[]> {
  if (ctx.env.ETCD_ENDPOINTS) {
    ctx.say(`etcd: using ETCD_ENDPOINTS=${ctx.env.ETCD_ENDPOINTS} (no own etcd)`);
    return etcdSettings(ctx.env).endpoints;
  }
  const { etcdClient: clientPort, etcdPeer: peerPort } = ctx.ports;
  ctx.say(`etcd: starting on 127.0.0.1:${clientPort}`);
  const server = await startEtcd({
    dir: ctx.layout.etcd,
    clientPort,
    peerPort,
    logFile: logFile(ctx.layout, 'etcd'),
    signal: ctx.signal,
  });
  started.etcd = server;
  return server.endpoints;
}

async function influxStep(ctx: LaunchContext, started: Started): Promise<string> {
  const database = influxSettings(ctx.env).database || DEFAULTS.influxDatabase;
  let url: string;
  if (ctx.env.INFLUX_URL) {
    ctx.say(`InfluxDB: using INFLUX_URL=${ctx.env.INFLUX_URL} (no own influxd)`);
    url = ctx.env.INFLUX_URL.replace(/\/$/, '');
  } else {
    const { influx: port, influxRpc: rpcPort } = ctx.ports;
    ctx.say(`InfluxDB: starting on 127.0.0.1:${port}`);
    const server = await startInflux({
      dir: ctx.layout.influx,
      port,
      rpcPort,
      logFile: logFile(ctx.layout, 'influxd'),
      signal: ctx.signal,
    });
    started.influxd = server;
    url = server.url;
  }
  await ensureInfluxDatabase(url, database);
  return url;
}
