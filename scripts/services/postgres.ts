import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { prepareClusterDir, type ClusterDirOptions } from './postgres-cluster-dir.ts';
import { asPostgresUser, postgresBinDir } from './postgres-install.ts';
import { withLogTail } from './log-tail.ts';
import { freePort, LOOPBACK } from './ports.ts';
import { startProcess, type ManagedProcess } from './process.ts';
import { waitUntil } from './wait.ts';

export interface PostgresOptions {
  /** Cluster directory; initdb runs once when it holds no cluster yet. */
  dir: string;
  port?: number;
  logFile: string;
  /** false trades crash safety for speed (tests): initdb --no-sync, fsync off. Default true. */
  durable?: boolean;
  startTimeoutMs?: number;
  signal?: AbortSignal;
  /** Where a cluster the postgres user cannot reach goes (tests). */
  clusterDirOptions?: ClusterDirOptions;
}

export interface PostgresServer {
  /** Superuser URL (user postgres, no password: trust on loopback), database postgres. */
  url: string;
  port: number;
  /** Where the cluster really lives (differs from dir when the postgres user cannot reach dir). */
  clusterDir: string;
  /** The cluster of a deleted data dir that was wiped before this one was made (postgres-cluster-dir.ts). */
  wipedOrphan?: string;
  process: ManagedProcess;
  stop(): Promise<void>;
}

const UNIX_SOCKET_PATH_MAX = 100;

export async function startPostgres(options: PostgresOptions): Promise<PostgresServer> {
  const durable = options.durable ?? true;
  const binDir = postgresBinDir();
  const { path: clusterDir, wipedOrphan } = prepareClusterDir(options.dir, options.clusterDirOptions);
  fs.mkdirSync(path.dirname(options.logFile), { recursive: true });
  if (wipedOrphan) {
    fs.appendFileSync(
      options.logFile,
      `vmmig: ${options.dir} was deleted: wiped its old cluster ${wipedOrphan} before making a new one\n`,
    );
  }
  if (!fs.existsSync(path.join(clusterDir, 'PG_VERSION')))
    initCluster(binDir, clusterDir, options.logFile, durable);

  const port = options.port ?? (await freePort());
  const socketDir = socketDirFor(clusterDir, port);
  const settings = [`listen_addresses=${LOOPBACK}`, 'max_connections=200'];
  if (!durable) settings.push('fsync=off', 'synchronous_commit=off', 'full_page_writes=off');
  const [command, args] = asPostgresUser(path.join(binDir, 'postgres'), [
    '-D',
    clusterDir,
    '-p',
    String(port),
    '-k',
    socketDir,
    ...settings.flatMap((setting) => ['-c', setting]),
  ]);
  // SIGINT is postgres's "fast shutdown": it ends sessions instead of waiting for clients to leave.
  const child = startProcess({
    name: 'postgres',
    command,
    args,
    logFile: options.logFile,
    cwd: '/',
    env: withoutPgVariables(),
    stopSignal: 'SIGINT',
    graceMs: 15_000,
  });
  const url = `postgres://postgres@${LOOPBACK}:${port}/postgres`;
  try {
    await waitUntil(() => canQuery(url), {
      what: `postgres to accept connections on port ${port}`,
      timeoutMs: options.startTimeoutMs ?? 60_000,
      process: child,
      signal: options.signal,
    });
  } catch (error) {
    await child.stop();
    throw error;
  }
  return { url, port, clusterDir, wipedOrphan, process: child, stop: () => child.stop() };
}

function initCluster(binDir: string, clusterDir: string, logFile: string, durable: boolean): void {
  const initdbArgs = ['-D', clusterDir, '--auth=trust', '-U', 'postgres', '-E', 'UTF8', '--locale=C'];
  if (!durable) initdbArgs.push('--no-sync');
  const [command, args] = asPostgresUser(path.join(binDir, 'initdb'), initdbArgs);
  const logFd = fs.openSync(logFile, 'a');
  try {
    const result = spawnSync(command, args, {
      cwd: '/',
      env: withoutPgVariables(),
      stdio: ['ignore', logFd, logFd],
    });
    if (result.status !== 0) throw new Error(withLogTail(`initdb of ${clusterDir} failed`, logFile));
  } finally {
    fs.closeSync(logFd);
  }
}

/** The cluster dir itself unless its socket path would pass the kernel's ~107-byte limit. */
function socketDirFor(clusterDir: string, port: number): string {
  const socketPath = path.join(clusterDir, `.s.PGSQL.${port}`);
  return socketPath.length < UNIX_SOCKET_PATH_MAX ? clusterDir : '/tmp';
}

async function canQuery(url: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2_000 });
  try {
    await client.connect();
    await client.query('SELECT 1');
    return true;
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** A PGDATA or PGPORT in the caller's environment must not redirect our own cluster. */
function withoutPgVariables(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('PG')));
}
