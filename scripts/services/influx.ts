import fs from 'node:fs';
import path from 'node:path';
import { freePorts, LOOPBACK } from './ports.ts';
import { startProcess, type ManagedProcess } from './process.ts';
import { httpStatus, waitUntil } from './wait.ts';

export interface InfluxOptions {
  dir: string;
  /** HTTP API port. */
  port?: number;
  /** Port of the RPC service used by backup and restore. */
  rpcPort?: number;
  logFile: string;
  startTimeoutMs?: number;
  signal?: AbortSignal;
  /** Another influxd binary than Debian's on PATH (the 1.8 the Flux tests build). */
  command?: string;
  /** Serve the 2.x query API (/api/v2/query, Flux): InfluxDB 1.8 and later. */
  flux?: boolean;
}

export interface InfluxServer {
  url: string;
  port: number;
  rpcPort: number;
  process: ManagedProcess;
  stop(): Promise<void>;
}

/** InfluxDB 1.x (InfluxQL) with every listener on loopback and no phoning home. */
export async function startInflux(options: InfluxOptions): Promise<InfluxServer> {
  fs.mkdirSync(options.dir, { recursive: true, mode: 0o700 });
  const spare = await freePorts(3);
  const port = options.port ?? (spare.find((p) => p !== options.rpcPort) as number);
  const rpcPort = options.rpcPort ?? (spare.find((p) => p !== port) as number);
  const configFile = path.join(options.dir, 'influxdb.conf');
  fs.writeFileSync(configFile, influxConfig(options.dir, port, rpcPort, options.flux ?? false));
  const child = startProcess({
    name: 'influxd',
    command: options.command ?? 'influxd',
    args: ['-config', configFile],
    logFile: options.logFile,
    env: withoutInfluxVariables(),
  });
  const url = `http://${LOOPBACK}:${port}`;
  try {
    await waitUntil(async () => (await httpStatus(`${url}/ping`)) === 204, {
      what: `influxd to answer /ping on ${url}`,
      timeoutMs: options.startTimeoutMs ?? 30_000,
      process: child,
      signal: options.signal,
    });
  } catch (error) {
    await child.stop();
    throw error;
  }
  return { url, port, rpcPort, process: child, stop: () => child.stop() };
}

function influxConfig(dir: string, port: number, rpcPort: number, flux: boolean): string {
  const quoted = (value: string): string => JSON.stringify(value);
  return `# Written by scripts/services/influx.ts at every start: edits are lost.
reporting-disabled = true
bind-address = ${quoted(`${LOOPBACK}:${rpcPort}`)}

[meta]
  dir = ${quoted(path.join(dir, 'meta'))}

[data]
  dir = ${quoted(path.join(dir, 'data'))}
  wal-dir = ${quoted(path.join(dir, 'wal'))}
  query-log-enabled = false

[monitor]
  store-enabled = false

[http]
  enabled = true
  bind-address = ${quoted(`${LOOPBACK}:${port}`)}${flux ? '\n  flux-enabled = true' : ''}
  log-enabled = false
  pprof-enabled = false

[logging]
  level = "warn"

[[graphite]]
  enabled = false

[[collectd]]
  enabled = false

[[opentsdb]]
  enabled = false

[[udp]]
  enabled = false
`;
}

/** influxd reads INFLUXDB_* variables as config overrides; only the file above should count. */
function withoutInfluxVariables(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('INFLUXDB_')));
}
