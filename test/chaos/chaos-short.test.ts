/**
 * The short chaos run (`npm run chaos` is the long one): 20 sim migrations (CHAOS_SIM_COUNT; every
 * fault in turn, twice), then one migration per fault on real QEMU. Each stack is its own set of killable processes
 * (Temporal, PostgreSQL, etcd, API, worker, agents): the servers of the global setup are not used.
 * The SIGSTOP and PostgreSQL outages are shortened so that the whole file stays within minutes.
 */
import { describe, expect, it } from 'vitest';
import { FAULTS } from '../../scripts/chaos/faults.ts';
import { formatReport } from '../../scripts/chaos/report.ts';
import { defaultOptions, runChaos, type ChaosOptions } from '../../scripts/chaos/run.ts';

function shortOptions(driver: 'sim' | 'qemu', count: number): ChaosOptions {
  const options = defaultOptions(driver);
  return {
    ...options,
    count,
    seed: Number(process.env.CHAOS_SEED ?? 7),
    plan: 'cycle',
    faultOptions: { sigstopMs: 8_000, postgresDownMs: 5_000, agentRestartDelayMs: 500 },
    terminalTimeoutMs: 180_000,
    log: () => undefined,
  };
}

describe('chaos (short)', () => {
  it('keeps the invariant through sim migrations under every fault', { timeout: 15 * 60_000 }, async () => {
    const result = await runChaos(shortOptions('sim', Number(process.env.CHAOS_SIM_COUNT ?? 20)));
    console.log(formatReport(result.records, { expectedMs: result.expectedMs }));
    expect(result.leftoverProcesses).toEqual([]);
    expect(result.records.flatMap((r) => r.violations.map((v) => `#${r.index} ${r.fault}: ${v}`))).toEqual(
      [],
    );
  });

  it('keeps the invariant through one QEMU migration per fault', { timeout: 20 * 60_000 }, async () => {
    const result = await runChaos(shortOptions('qemu', FAULTS.length));
    console.log(formatReport(result.records, { expectedMs: result.expectedMs }));
    expect(result.leftoverProcesses).toEqual([]);
    expect(result.records.flatMap((r) => r.violations.map((v) => `#${r.index} ${r.fault}: ${v}`))).toEqual(
      [],
    );
  });
});
