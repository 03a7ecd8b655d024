import fs from 'node:fs';
import path from 'node:path';

export const AGENT_NAMES = ['host-1', 'host-2', 'host-3'] as const;

/** Where the dev stack keeps everything: one directory, reused by the next start. */
export interface DataLayout {
  root: string;
  postgres: string;
  etcd: string;
  influx: string;
  temporal: string;
  agentsRoot: string;
  sharedStorage: string;
  logs: string;
  apiTokenFile: string;
  /** AGENT_CREDENTIAL_KEY of the API and the worker (each host's credential is derived from it). */
  agentCredentialKeyFile: string;
  /** AGENT_PEER_TOKEN of the agents (accepted on their peer routes only). */
  peerTokenFile: string;
  /** Ports chosen at the first start, reused by the next one so URLs and registrations stay valid. */
  portsFile: string;
}

export function dataLayout(root: string): DataLayout {
  return {
    root,
    postgres: path.join(root, 'postgres'),
    etcd: path.join(root, 'etcd'),
    influx: path.join(root, 'influx'),
    temporal: path.join(root, 'temporal'),
    agentsRoot: path.join(root, 'agents'),
    sharedStorage: path.join(root, 'shared-storage'),
    logs: path.join(root, 'logs'),
    apiTokenFile: path.join(root, 'api-token'),
    agentCredentialKeyFile: path.join(root, 'agent-credential-key'),
    peerTokenFile: path.join(root, 'agent-peer-token'),
    portsFile: path.join(root, 'ports.json'),
  };
}

export const agentDir = (layout: DataLayout, name: string): string => path.join(layout.agentsRoot, name);
export const logFile = (layout: DataLayout, name: string): string => path.join(layout.logs, `${name}.log`);

export function createLayoutDirs(layout: DataLayout): void {
  for (const dir of [layout.root, layout.logs, layout.sharedStorage, layout.agentsRoot]) {
    fs.mkdirSync(dir, { recursive: true });
  }
  for (const name of AGENT_NAMES) fs.mkdirSync(agentDir(layout, name), { recursive: true });
}
