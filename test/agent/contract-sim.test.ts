import { afterAll } from 'vitest';
import { agentFactory } from './agents.ts';
import { driverContract } from './contract.ts';

const { makeAgent, cleanup } = await agentFactory('sim');
afterAll(cleanup);

driverContract('sim driver', makeAgent, {
  driver: 'sim',
  heartbeatTimeoutMs: 5_000,
  migrationTimeoutMs: 30_000,
  pauseWatchMs: 1_500,
  mirrorBandwidthBytes: 16 * 1024 * 1024,
  diskExportUri: /^sim\+nbd:\/\/127\.0\.0\.1:\d+\/g-[0-9a-f-]+\/data$/,
});
