import { describe, expect, it } from 'vitest';
import { emptyLock, liveHolder, release, renew, tryAcquire } from '../../domain/migration-lock.ts';

const a = { owner: 'cycle-a', description: 'rule a', leaseMs: 1000 };
const b = { owner: 'cycle-b', description: 'rule b', leaseMs: 1000 };

describe('migration lock rules', () => {
  it('grants a free lock at once, with a lease', () => {
    const { state, answer } = tryAcquire(emptyLock(), a, 100);
    expect(answer).toEqual({ granted: true, expiresAt: 1100 });
    expect(liveHolder(state, 500)).toMatchObject({ owner: 'cycle-a', acquiredAt: 100 });
    expect(state.grants).toBe(1);
  });

  it('refuses another owner while the lease runs, naming the holder', () => {
    const held = tryAcquire(emptyLock(), a, 100).state;
    const { state, answer } = tryAcquire(held, b, 1099);
    expect(answer).toEqual({
      granted: false,
      holder: expect.objectContaining({ owner: 'cycle-a', description: 'rule a' }),
    });
    expect(state).toBe(held);
  });

  it('grants the same owner again (a retried request) without counting a new grant', () => {
    const held = tryAcquire(emptyLock(), a, 100).state;
    const again = tryAcquire(held, a, 600);
    expect(again.answer).toEqual({ granted: true, expiresAt: 1600 });
    expect(again.state.grants).toBe(1);
    expect(again.state.holder?.acquiredAt).toBe(100);
  });

  it('lets the lease run out: at its deadline the lock is free for anyone', () => {
    const held = tryAcquire(emptyLock(), a, 100).state;
    expect(liveHolder(held, 1100)).toBeNull();
    const taken = tryAcquire(held, b, 1100);
    expect(taken.answer.granted).toBe(true);
    expect(taken.state.holder?.owner).toBe('cycle-b');
    expect(taken.state.grants).toBe(2);
  });

  it('renews only the live holder; a holder whose lease ran out learns it lost the lock', () => {
    const held = tryAcquire(emptyLock(), a, 100).state;
    const renewed = renew(held, { owner: 'cycle-a', leaseMs: 1000 }, 900);
    expect(renewed.answer).toEqual({ held: true });
    expect(renewed.state.holder?.expiresAt).toBe(1900);
    const lost = { held: false, released: false };
    expect(renew(held, { owner: 'cycle-b', leaseMs: 1000 }, 900).answer).toEqual(lost);
    expect(renew(held, { owner: 'cycle-a', leaseMs: 1000 }, 1100).answer).toEqual(lost);
    expect(renew(emptyLock(), { owner: 'cycle-a', leaseMs: 1000 }, 0).answer).toEqual(lost);
  });

  it('tells a renewal that crossed its own release that the holder released it', () => {
    const freed = release(tryAcquire(emptyLock(), a, 100).state, 'cycle-a').state;
    expect(renew(freed, { owner: 'cycle-a', leaseMs: 1000 }, 200).answer).toEqual({
      held: false,
      released: true,
    });
    let state = freed;
    for (let i = 0; i < 25; i += 1)
      state = release(tryAcquire(state, { ...b, owner: `o${i}` }, 300 + i).state, `o${i}`).state;
    expect(state.released).toHaveLength(20);
    expect(renew(state, { owner: 'cycle-a', leaseMs: 1000 }, 400).answer).toEqual({
      held: false,
      released: false,
    });
  });

  it('releases only for its holder', () => {
    const held = tryAcquire(emptyLock(), a, 100).state;
    expect(release(held, 'cycle-b')).toEqual({ state: held, released: false });
    const freed = release(held, 'cycle-a');
    expect(freed.released).toBe(true);
    expect(freed.state.holder).toBeNull();
    expect(release(freed.state, 'cycle-a').released).toBe(false);
  });

  it('a former holder releasing after another took the lock frees nothing', () => {
    const taken = tryAcquire(tryAcquire(emptyLock(), a, 100).state, b, 2000).state;
    expect(release(taken, 'cycle-a').released).toBe(false);
    expect(taken.holder?.owner).toBe('cycle-b');
  });
});
