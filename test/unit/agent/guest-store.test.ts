import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { GuestStore, type StoredGuest } from '../../../agent/drivers/guest-store.ts';
import { guestSpecSchema } from '../../../domain/agent-contract.ts';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

function storeAndGuest(): { store: GuestStore; guest: StoredGuest } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'guest-store-'));
  dirs.push(dir);
  const spec = guestSpecSchema.parse({ id: 'g1', name: 'web-1', vcpus: 1, memoryMb: 128 });
  return {
    store: new GuestStore(dir),
    guest: { spec, desired: 'running', everStarted: true, migration: null, pid: 42 },
  };
}

describe('the agent guest store', () => {
  it('loads what it saved, the state written on every save', async () => {
    const { store, guest } = storeAndGuest();
    await store.save(guest);
    await store.save({ ...guest, desired: 'paused', pid: 43 });
    expect(await store.load('g1')).toEqual({ ...guest, desired: 'paused', pid: 43 });
  });

  it('writes a changed spec again', async () => {
    const { store, guest } = storeAndGuest();
    await store.save(guest);
    const spec = { ...guest.spec, memoryMb: 256 };
    await store.save({ ...guest, spec });
    expect((await store.load('g1'))?.spec.memoryMb).toBe(256);
  });

  it('writes the spec again after the guest was removed', async () => {
    const { store, guest } = storeAndGuest();
    await store.save(guest);
    await store.remove('g1');
    expect(await store.load('g1')).toBeNull();
    await store.save(guest);
    expect(await store.load('g1')).toEqual(guest);
  });

  it('does not rewrite an unchanged spec (a migration saves its guest several times)', async () => {
    const { store, guest } = storeAndGuest();
    await store.save(guest);
    const specFile = path.join(store.dir('g1'), 'spec.json');
    const before = fs.statSync(specFile).ino;
    await store.save({ ...guest, desired: 'paused' });
    expect(fs.statSync(specFile).ino).toBe(before);
  });
});
