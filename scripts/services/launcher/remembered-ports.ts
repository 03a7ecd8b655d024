import fs from 'node:fs';
import { z } from 'zod';

const port = z.number().int().min(1).max(65535);
const rememberedPortsSchema = z.object({
  postgres: port.optional(),
  etcdClient: port.optional(),
  etcdPeer: port.optional(),
  influx: port.optional(),
  influxRpc: port.optional(),
  agents: z.record(z.string(), port).default({}),
});
export type RememberedPorts = z.infer<typeof rememberedPortsSchema>;

/** The ports of the last start; an unreadable file just means "choose new ones". */
export function loadRememberedPorts(file: string): RememberedPorts {
  try {
    return rememberedPortsSchema.parse(JSON.parse(fs.readFileSync(file, 'utf8')));
  } catch {
    return { agents: {} };
  }
}

export function saveRememberedPorts(file: string, ports: RememberedPorts): void {
  fs.writeFileSync(file, `${JSON.stringify(ports, null, 2)}\n`);
}
