import path from 'node:path';
import { DEFAULTS, etcdSettings, influxSettings } from '../../../domain/config.ts';
import { ensureInfluxDatabase } from '../influx-database.ts';
import { isPortFree } from '../ports.ts';
import { ensureDatabase } from '../postgres-database.ts';
import { SERVER_LOG_NAMES, startStackServers, type StackServerName } from '../stack-servers.ts';
import { findTemporalCli } from '../temporal-cli.ts';
import { loadTemporalDevConfig, type TemporalDevConfig } from '../temporal-config.ts';
import { ensureSearchAttributes } from '../temporal-operator.ts';
import { LaunchError, type LaunchContext } from './context.ts';

export interface Infrastructure {
  temporal: { address: string; uiUrl: string | null; namespace: string };
  /** URL of the vmmig database. */
  databaseUrl: string;
  etcdEndpoints: string[];
  influxUrl: string;
}

export const DEV_DATABASE = 'vmmig';

/** Registered with the running stack in this order, whatever finished first, so that Ctrl-C stops them in reverse. */
const SERVER_ORDER: readonly StackServerName[] = ['temporal', 'postgres', 'etcd', 'influx'];

/**
 * Temporal, PostgreSQL, etcd and InfluxDB, each started here (scripts/services/stack-servers.ts, in the data
 * dir, on the planned ports) unless the environment points at an existing one (TEMPORAL_ADDRESS, DATABASE_URL,
 * ETCD_ENDPOINTS, INFLUX_URL); then the database, the InfluxDB database and the search attributes.
 */
export async function startInfrastructure(ctx: LaunchContext): Promise<Infrastructure> {
  const { env, layout, ports } = ctx;
  const config = loadTemporalDevConfig();
  const namespace = env.TEMPORAL_NAMESPACE || config.namespace;
  if (!env.TEMPORAL_ADDRESS) await assertTemporalPortsFree(config);
  sayWhatStarts(ctx, config);
  const servers = await startStackServers({
    root: layout.root,
    signal: ctx.signal,
    temporal: env.TEMPORAL_ADDRESS
      ? undefined
      : {
          cli: findTemporalCli(env),
          dbFile: path.resolve(layout.root, config.dbFile),
          port: config.port,
          uiPort: config.uiPort,
          namespace,
        },
    postgres: env.DATABASE_URL ? undefined : { dir: layout.postgres, port: ports.postgres },
    etcd: env.ETCD_ENDPOINTS
      ? undefined
      : { dir: layout.etcd, clientPort: ports.etcdClient, peerPort: ports.etcdPeer },
    influx: env.INFLUX_URL ? undefined : { dir: layout.influx, port: ports.influx, rpcPort: ports.influxRpc },
  });
  for (const name of SERVER_ORDER) {
    const server = servers[name];
    if (server) ctx.stack.add(SERVER_LOG_NAMES[name], server);
  }
  if (servers.postgres?.wipedOrphan) {
    ctx.say(
      `PostgreSQL: ${layout.postgres} was deleted: wiped its old cluster ${servers.postgres.wipedOrphan}`,
    );
  }
  if (servers.postgres && servers.postgres.clusterDir !== layout.postgres) {
    ctx.say(
      `PostgreSQL: the postgres user cannot reach ${layout.postgres}: cluster kept in ${servers.postgres.clusterDir}`,
    );
  }

  const temporal = servers.temporal
    ? { address: servers.temporal.address, uiUrl: servers.temporal.uiUrl, namespace }
    : { address: env.TEMPORAL_ADDRESS as string, uiUrl: null, namespace };
  const influxUrl = servers.influx ? servers.influx.url : (env.INFLUX_URL as string).replace(/\/$/, '');
  const [databaseUrl] = await Promise.all([
    servers.postgres ? ensureDatabase(servers.postgres.url, DEV_DATABASE) : (env.DATABASE_URL as string),
    servers.temporal
      ? undefined
      : registerSearchAttributesOn(ctx, temporal.address, namespace, config.searchAttributes),
    ensureInfluxDatabase(influxUrl, influxSettings(env).database || DEFAULTS.influxDatabase),
  ]);
  const etcdEndpoints = servers.etcd ? servers.etcd.endpoints : etcdSettings(env).endpoints;
  return { temporal, databaseUrl, etcdEndpoints, influxUrl };
}

async function assertTemporalPortsFree(config: TemporalDevConfig): Promise<void> {
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
}

function sayWhatStarts({ env, ports, say }: LaunchContext, config: TemporalDevConfig): void {
  say(
    env.TEMPORAL_ADDRESS
      ? `Temporal: using TEMPORAL_ADDRESS=${env.TEMPORAL_ADDRESS} (no own dev server)`
      : `Temporal: starting the dev server on 127.0.0.1:${config.port}`,
  );
  say(
    env.DATABASE_URL
      ? 'PostgreSQL: using DATABASE_URL (no own cluster)'
      : `PostgreSQL: starting on 127.0.0.1:${ports.postgres}`,
  );
  say(
    env.ETCD_ENDPOINTS
      ? `etcd: using ETCD_ENDPOINTS=${env.ETCD_ENDPOINTS} (no own etcd)`
      : `etcd: starting on 127.0.0.1:${ports.etcdClient}`,
  );
  say(
    env.INFLUX_URL
      ? `InfluxDB: using INFLUX_URL=${env.INFLUX_URL} (no own influxd)`
      : `InfluxDB: starting on 127.0.0.1:${ports.influx}`,
  );
}

async function registerSearchAttributesOn(
  ctx: LaunchContext,
  address: string,
  namespace: string,
  wanted: TemporalDevConfig['searchAttributes'],
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
