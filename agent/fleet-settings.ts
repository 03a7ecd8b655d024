import path from 'node:path';
import { EnvReader } from '../domain/config.ts';
import type { SimFleetOptions } from './fleet.ts';
import { readAgentOptions } from './settings.ts';

/** What `tsx agent/fleet.ts` runs with: the fleet's options and what only the entry point reads. */
export interface SimFleetSettings extends Omit<
  SimFleetOptions,
  'log' | 'hostLog' | 'credentialFor' | 'guestsFor'
> {
  /** SIM_FLEET_CREDENTIAL_KEY: the API's AGENT_CREDENTIAL_KEY, each host's credential derived from it. */
  credentialKey: string | null;
  /** SIM_FLEET_GUESTS_FILE: the guests each host runs from the start. */
  guestsFile: string | null;
  /** SIM_FLEET_QUIET: only the fleet's own lines, none of each host's. */
  quiet: boolean;
}

/** One agent's variables that name a single host: a fleet names its hosts itself. */
const PER_HOST = [
  'AGENT_NAME',
  'AGENT_DIR',
  'AGENT_URL',
  'AGENT_ENROLMENT_TOKEN',
  'AGENT_CPUS',
  'AGENT_MEMORY_MB',
];
const PER_HOST_INSTEAD: Record<string, string> = {
  AGENT_NAME: 'SIM_FLEET_PREFIX',
  AGENT_DIR: 'SIM_FLEET_DIR',
  AGENT_URL: 'each host advertises http://AGENT_HOST:<its port>',
  AGENT_ENROLMENT_TOKEN: 'SIM_FLEET_CREDENTIAL_KEY or a credential file in each host dir',
  AGENT_CPUS: 'SIM_FLEET_SEED picks each host size',
  AGENT_MEMORY_MB: 'SIM_FLEET_SEED picks each host size',
};
const PREFIX = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

/**
 * The fleet's environment: SIM_FLEET_* and the agent's own variables (etcd, InfluxDB, API_URL, AGENT_PEER_TOKEN,
 * AGENT_HOST, SHARED_STORAGE_DIR…), those checked exactly as agent/settings.ts checks them for one agent.
 */
export function readSimFleetOptions(r: EnvReader): SimFleetSettings {
  const count = r.int('SIM_FLEET_HOSTS', 0, 1, 100_000);
  if (!r.isSet('SIM_FLEET_HOSTS')) r.required('SIM_FLEET_HOSTS', 'how many sim hosts to run');
  const dir = path.resolve(r.required('SIM_FLEET_DIR', 'each host keeps its state in <dir>/<name>/'));
  const prefix = r.string('SIM_FLEET_PREFIX', 'sim-').trim();
  if (!PREFIX.test(prefix))
    r.problem(`SIM_FLEET_PREFIX must be letters, digits, '.', '_' or '-', got '${prefix}'`);
  const seed = r.int('SIM_FLEET_SEED', 1, 0, 2 ** 31 - 1);
  const refreshS = r.int('SIM_FLEET_REGISTER_REFRESH_S', 60, 1);
  const spreadS = r.int('SIM_FLEET_REGISTER_SPREAD_S', refreshS, 0);
  const concurrency = r.int('SIM_FLEET_START_CONCURRENCY', 16, 1, 1_000);
  for (const name of PER_HOST.filter((n) => r.isSet(n))) {
    r.problem(`${name} is for one agent, not a fleet (${PER_HOST_INSTEAD[name]})`);
  }
  if (r.isSet('AGENT_DRIVER') && r.optional('AGENT_DRIVER')?.trim() !== 'sim')
    r.problem(`AGENT_DRIVER must be sim for a fleet, got '${r.optional('AGENT_DRIVER')}'`);

  const agentReader = new EnvReader({
    ...r.env,
    AGENT_NAME: `${prefix}fleet`,
    AGENT_DIR: dir,
    AGENT_PORT: r.env.AGENT_PORT ?? '0',
    AGENT_DRIVER: 'sim',
    SHARED_STORAGE_DIR: r.env.SHARED_STORAGE_DIR || path.join(dir, 'shared'),
    AGENT_URL: undefined,
    AGENT_ENROLMENT_TOKEN: undefined,
    AGENT_CPUS: undefined,
    AGENT_MEMORY_MB: undefined,
  });
  const agent = readAgentOptions(agentReader);
  for (const problem of agentReader.problems) r.problem(problem);
  r.files.push(...agentReader.files);
  if (agent.port !== 0)
    r.problem('AGENT_PORT must be 0 for a fleet: each host listens on a free port of its own');

  const apiToken = r.optional('SIM_FLEET_API_TOKEN');
  // Without a key, each host reads <dir>/<name>/credential (startAgent names the one missing).
  const credentialKey = r.optional('SIM_FLEET_CREDENTIAL_KEY') ?? null;
  const guestsFile = r.file('SIM_FLEET_GUESTS_FILE');
  return {
    count,
    dir,
    prefix,
    seed,
    host: agent.host,
    sharedStorageDir: agent.sharedStorageDir,
    networks: agent.networks,
    sim: agent.sim ?? {},
    liveness: agent.liveness,
    fenceOnLeaseLoss: agent.fenceOnLeaseLoss,
    metrics: agent.metrics,
    registration:
      agent.registration === null
        ? null
        : {
            apiUrl: agent.registration.apiUrl,
            ...(apiToken !== undefined ? { apiToken } : {}),
            ...(agent.registration.reportIntervalS !== undefined
              ? { reportIntervalS: agent.registration.reportIntervalS }
              : {}),
            refreshMs: refreshS * 1000,
            spreadMs: spreadS * 1000,
          },
    ...(agent.peerToken !== undefined ? { peerToken: agent.peerToken } : {}),
    startConcurrency: concurrency,
    credentialKey,
    guestsFile: guestsFile === null ? null : path.resolve(guestsFile),
    quiet: r.bool('SIM_FLEET_QUIET', false),
  };
}
