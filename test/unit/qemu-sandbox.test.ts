import { describe, expect, it } from 'vitest';
import { QEMU_SANDBOX, qemuArguments } from '../../agent/drivers/qemu-command.ts';
import type { GuestSpec } from '../../domain/agent-contract.ts';
import { testQemuLaunch } from '../helpers/qemu-launch.ts';

const spec: GuestSpec = {
  id: 'g-1',
  name: 'guest-1',
  vcpus: 1,
  memoryMb: 128,
  disks: [],
  networks: [],
  dirtyRateMibs: 0,
  fillMb: 0,
};

const launch = testQemuLaunch(spec);

describe('QEMU sandbox', () => {
  it('starts every guest QEMU, source and destination, under seccomp with spawning denied', () => {
    expect(QEMU_SANDBOX).toBe('on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny');
    for (const args of [qemuArguments(launch), qemuArguments({ ...launch, incoming: true })]) {
      const at = args.indexOf('-sandbox');
      expect(at).toBeGreaterThan(-1);
      expect(args[at + 1]).toBe(QEMU_SANDBOX);
      expect(args.filter((arg) => arg === '-sandbox')).toHaveLength(1);
    }
  });
});
