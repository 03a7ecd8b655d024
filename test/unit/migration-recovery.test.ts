import { describe, expect, it } from 'vitest';
import { guestRunStates, migrationStatuses } from '../../domain/agent-contract.ts';
import {
  destinationCleanup,
  isSourceSettled,
  planForDeadDestination,
  recoveryAfterCopy,
  whereTheGuestRuns,
} from '../../domain/migration-recovery.ts';
import { monitorAgentTimeoutMs } from '../../domain/live-migration.ts';
import { migrationStatus } from './status-fixture.ts';

describe('isSourceSettled: a cancel has landed for good once QEMU stops changing on its own', () => {
  it.each([
    ['none', true],
    ['setup', false],
    ['active', false],
    ['postcopy-active', true],
    ['completed', true],
    ['failed', true],
    ['cancelling', false],
    ['cancelled', true],
  ] as const)('%s -> %s', (status, settled) => {
    expect(isSourceSettled({ status })).toBe(settled);
  });

  it('covers every status QEMU reports', () => {
    expect(migrationStatuses.length).toBe(8);
  });
});

describe('recoveryAfterCopy: the source says which copy is valid', () => {
  it('rolls forward when QEMU completed the copy before the cancel landed', () => {
    const r = recoveryAfterCopy('m1', migrationStatus({ status: 'completed' }));
    expect(r.kind).toBe('roll-forward');
  });

  it('finishes post-copy when it began, even if QEMU now reports it failed or cancelled', () => {
    expect(recoveryAfterCopy('m1', migrationStatus({ status: 'postcopy-active' })).kind).toBe(
      'finish-post-copy',
    );
    for (const status of ['completed', 'failed', 'cancelled'] as const) {
      expect(recoveryAfterCopy('m1', migrationStatus({ status, postCopyStarted: true })).kind).toBe(
        'finish-post-copy',
      );
    }
  });

  it.each(['none', 'failed', 'cancelled'] as const)('rolls back when the source reports %s', (status) => {
    expect(recoveryAfterCopy('m1', migrationStatus({ status })).kind).toBe('roll-back');
  });

  it.each(['running', 'paused'] as const)(
    'rolls forward when the destination is %s, even if the source lost the guest with its host',
    (destination) => {
      const lost = recoveryAfterCopy(
        'm1',
        migrationStatus({ migrationId: null, status: 'none' }),
        destination,
      );
      expect(lost.kind).toBe('roll-forward');
      expect(recoveryAfterCopy('m1', migrationStatus({ status: 'cancelled' }), destination).kind).toBe(
        'roll-forward',
      );
    },
  );

  it.each(['incoming', 'crashed', null] as const)(
    'leaves the decision to the source when the destination is %s',
    (d) => {
      expect(recoveryAfterCopy('m1', migrationStatus({ status: 'cancelled' }), d).kind).toBe('roll-back');
      expect(recoveryAfterCopy('m1', migrationStatus({ status: 'completed' }), d).kind).toBe('roll-forward');
    },
  );

  it("rolls back when the source knows another migration: a stale record is not this migration's completion", () => {
    const r = recoveryAfterCopy('m2', migrationStatus({ migrationId: 'm1', status: 'completed' }));
    expect(r.kind).toBe('roll-back');
    expect(r.reason).toContain('m2');
  });
});

describe('planForDeadDestination: a destination without a heartbeat after the switch-over', () => {
  it('never goes back to a source whose memory went stale under post-copy', () => {
    for (const keep of [true, false]) {
      expect(planForDeadDestination({ postCopyStarted: true, keepDestGuestOnFailed: keep }).kind).toBe(
        'keep-destination',
      );
    }
  });

  it('stops the destination (destroyed, or paused when kept) before the pre-copy source resumes', () => {
    expect(planForDeadDestination({ postCopyStarted: false, keepDestGuestOnFailed: false })).toMatchObject({
      kind: 'back-to-source',
      destination: 'destroy',
    });
    expect(planForDeadDestination({ postCopyStarted: false, keepDestGuestOnFailed: true })).toMatchObject({
      kind: 'back-to-source',
      destination: 'pause',
    });
  });
});

describe('destinationCleanup: what a rollback does with the destination it finds', () => {
  it('has nothing to do when the destination never knew the guest', () => {
    expect(destinationCleanup(null, false)).toBe('nothing');
    expect(destinationCleanup(null, true)).toBe('nothing');
  });

  it.each(['defined', 'stopped', 'incoming', 'crashed'] as const)(
    'destroys a %s destination unless asked to keep it',
    (state) => {
      expect(destinationCleanup(state, false)).toBe('destroy');
      expect(destinationCleanup(state, true)).toBe('leave-incoming');
    },
  );

  it.each(['running', 'paused'] as const)(
    'never destroys a %s destination: it holds the whole guest',
    (state) => {
      expect(destinationCleanup(state, false)).toBe('leave-running');
      expect(destinationCleanup(state, true)).toBe('leave-running');
    },
  );

  it('covers every run state', () => {
    expect(guestRunStates).toHaveLength(6);
  });
});

describe("monitorAgentTimeoutMs: one slow poll never outlives the monitor's heartbeat timeout", () => {
  it.each([1_000, 5_000, 10_000, 60_000])('heartbeat timeout %i ms', (heartbeat) => {
    expect(monitorAgentTimeoutMs(heartbeat)).toBeLessThan(heartbeat / 2);
  });
});

describe('whereTheGuestRuns: the records follow the guest after a failed step past the switch-over', () => {
  it('names the destination whenever the guest runs there', () => {
    for (const source of [...guestRunStates, null])
      expect(whereTheGuestRuns(source, 'running')).toBe('destination');
  });

  it('names the source when only it runs the guest', () => {
    for (const destination of [...guestRunStates.filter((s) => s !== 'running'), null]) {
      expect(whereTheGuestRuns('running', destination)).toBe('source');
    }
  });

  it('names nowhere when neither host runs it', () => {
    expect(whereTheGuestRuns('paused', 'paused')).toBe('nowhere');
    expect(whereTheGuestRuns(null, null)).toBe('nowhere');
    expect(whereTheGuestRuns('crashed', 'incoming')).toBe('nowhere');
  });
});
