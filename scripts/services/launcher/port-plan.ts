import { freePorts, isPortFree } from '../ports.ts';
import type { RememberedPorts } from './remembered-ports.ts';

type SinglePortKey = Exclude<keyof RememberedPorts, 'agents'>;
const SINGLE_PORT_KEYS: SinglePortKey[] = ['postgres', 'etcdClient', 'etcdPeer', 'influx', 'influxRpc'];

export type PortPlan = Required<RememberedPorts>;

/**
 * Every loopback port the launcher needs, chosen up front and all distinct: the remembered one
 * when it is still free (so data and registrations stay valid), else a fresh free one.
 * `reserved` are ports taken by something else of ours (the API, Temporal).
 */
export async function planPorts(
  remembered: RememberedPorts,
  agentNames: readonly string[],
  reserved: readonly number[],
): Promise<{ plan: PortPlan; moved: string[] }> {
  const taken = new Set(reserved);
  const moved: string[] = [];
  const keep = async (label: string, port: number | undefined): Promise<number | undefined> => {
    if (port === undefined) return undefined;
    if (!taken.has(port) && (await isPortFree(port))) {
      taken.add(port);
      return port;
    }
    moved.push(`${label} (was ${port})`);
    return undefined;
  };
  const single: Partial<Record<SinglePortKey, number>> = {};
  for (const key of SINGLE_PORT_KEYS) single[key] = await keep(key, remembered[key]);
  const agents: Record<string, number | undefined> = {};
  for (const name of agentNames) agents[name] = await keep(name, remembered.agents[name]);

  const missing =
    SINGLE_PORT_KEYS.filter((k) => single[k] === undefined).length +
    agentNames.filter((n) => agents[n] === undefined).length;
  const fresh = (await freePorts(missing + taken.size)).filter((p) => !taken.has(p));
  const next = (): number => fresh.shift() as number;
  const plan: PortPlan = {
    postgres: single.postgres ?? next(),
    etcdClient: single.etcdClient ?? next(),
    etcdPeer: single.etcdPeer ?? next(),
    influx: single.influx ?? next(),
    influxRpc: single.influxRpc ?? next(),
    agents: Object.fromEntries(agentNames.map((name) => [name, agents[name] ?? next()])),
  };
  return { plan, moved };
}
