import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, expect, inject } from 'vitest';
import { agentFactory } from './agents.ts';
import { type ContractAgent, driverContract } from './contract.ts';

// Real QEMU (TCG) guests booting the test image; the guest image dir comes from the global setup.
const { makeAgent, cleanup } = await agentFactory('qemu', {
  guestImageDir: inject('guestImageDir'),
  stopGraceMs: 3000,
});
afterAll(cleanup);

/** The test guest reports a stale page ("DIRTIER CORRUPT") and the kernel its panics on the serial console. */
async function assertGuestIntact(agent: ContractAgent, guestId: string): Promise<void> {
  const log = await readFile(path.join(agent.dir, 'guests', guestId, 'serial.log'), 'latin1');
  expect(log).toMatch(/^HB \d+/m);
  expect(log).not.toMatch(/Kernel panic|DIRTIER CORRUPT/);
}

driverContract('qemu driver', makeAgent, {
  driver: 'qemu',
  heartbeatTimeoutMs: 30_000,
  migrationTimeoutMs: 90_000,
  assertGuestIntact,
});
