import { describe, expect, it } from 'vitest';
import { chooseDestination } from '../../domain/placement.ts';
import { guest, host } from './fixtures.ts';

const noSkips = { skipCpuCheck: false, skipKernelCheck: false };
const source = host({ name: 'src' });

describe('chooseDestination', () => {
  it('picks the host with the most free memory, then the most free vCPUs, then by name', () => {
    const busy = host({ name: 'busy', committedMemoryMb: 8000 });
    const idle = host({ name: 'idle' });
    const idleButCpuBusy = host({ name: 'cpu-busy', committedVcpus: 20 });
    const twin = host({ name: 'a-twin' });
    const choice = chooseDestination(guest(), source, [source, busy, idleButCpuBusy, idle, twin], noSkips);
    expect(choice.ok && choice.destination.name).toBe('a-twin');
    const withoutTwin = chooseDestination(guest(), source, [busy, idleButCpuBusy, idle], noSkips);
    expect(withoutTwin.ok && withoutTwin.destination.name).toBe('idle');
  });

  it('filters hosts by the checks and says why each was rejected', () => {
    const full = host({ name: 'full', committedMemoryMb: 16000 });
    const otherCpu = host({ name: 'amd', cpuModel: 'AMD EPYC' });
    const ok = host({ name: 'ok', committedMemoryMb: 10000 });
    const choice = chooseDestination(guest(), source, [full, otherCpu, ok], noSkips);
    expect(choice.ok && choice.destination.name).toBe('ok');
    expect(choice.rejected.map((r) => [r.host, r.failures.map((f) => f.name)])).toEqual([
      ['full', ['destination_capacity']],
      ['amd', ['cpu_compatible']],
    ]);
  });

  it('fails with every host named when none passes', () => {
    const choice = chooseDestination(guest(), source, [host({ name: 'off', online: false })], noSkips);
    expect(choice.ok).toBe(false);
    if (!choice.ok) expect(choice.reason).toContain('off: destination_host_usable');
    const alone = chooseDestination(guest(), source, [source], noSkips);
    expect(!alone.ok && alone.reason).toContain('no other host exists');
  });

  it('validates prefer_host with the same checks and tries nothing else', () => {
    const preferred = host({ name: 'amd', cpuModel: 'AMD EPYC' });
    const other = host({ name: 'other' });
    const refused = chooseDestination(guest(), source, [preferred, other], noSkips, preferred);
    expect(refused.ok).toBe(false);
    if (!refused.ok) expect(refused.reason).toMatch(/prefer_host amd fails: cpu_compatible/);
    const skipped = chooseDestination(
      guest(),
      source,
      [preferred, other],
      { ...noSkips, skipCpuCheck: true },
      preferred,
    );
    expect(skipped.ok && skipped.destination.name).toBe('amd');
  });
});
