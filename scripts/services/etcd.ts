import fs from 'node:fs';
import { freePorts, LOOPBACK } from './ports.ts';
import { startProcess, type ManagedProcess } from './process.ts';
import { httpStatus, waitUntil } from './wait.ts';

export interface EtcdOptions {
  dir: string;
  clientPort?: number;
  peerPort?: number;
  logFile: string;
  startTimeoutMs?: number;
  signal?: AbortSignal;
}

export interface EtcdServer {
  endpoints: string[];
  clientPort: number;
  peerPort: number;
  process: ManagedProcess;
  stop(): Promise<void>;
}

const MEMBER_NAME = 'vmmig';

/** A single-member etcd cluster listening on loopback only. */
export async function startEtcd(options: EtcdOptions): Promise<EtcdServer> {
  fs.mkdirSync(options.dir, { recursive: true, mode: 0o700 });
  const [spareA, spareB] = await freePorts(2);
  const clientPort = options.clientPort ?? (spareA as number);
  const peerPort = options.peerPort ?? (clientPort === spareB ? (spareA as number) : (spareB as number));
  const clientUrl = `http://${LOOPBACK}:${clientPort}`;
  const peerUrl = `http://${LOOPBACK}:${peerPort}`;
  const child = startProcess({
    name: 'etcd',
    command: 'etcd',
    args: [
      `--name=${MEMBER_NAME}`,
      `--data-dir=${options.dir}`,
      `--listen-client-urls=${clientUrl}`,
      `--advertise-client-urls=${clientUrl}`,
      `--listen-peer-urls=${peerUrl}`,
      `--initial-advertise-peer-urls=${peerUrl}`,
      `--initial-cluster=${MEMBER_NAME}=${peerUrl}`,
      '--initial-cluster-state=new',
      '--logger=zap',
      '--log-outputs=stderr',
    ],
    logFile: options.logFile,
    env: withoutEtcdVariables(),
  });
  try {
    // /health answers 200 only once the member has a raft leader, i.e. can serve writes.
    await waitUntil(async () => (await httpStatus(`${clientUrl}/health`)) === 200, {
      what: `etcd to report healthy on ${clientUrl}`,
      timeoutMs: options.startTimeoutMs ?? 30_000,
      process: child,
      signal: options.signal,
    });
  } catch (error) {
    await child.stop();
    throw error;
  }
  return { endpoints: [clientUrl], clientPort, peerPort, process: child, stop: () => child.stop() };
}

/** etcd reads every ETCD_* variable as a flag; ours (ETCD_ENDPOINTS, ETCD_PREFIX) are not its flags. */
function withoutEtcdVariables(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('ETCD_')));
}
