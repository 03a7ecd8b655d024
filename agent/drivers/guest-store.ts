import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { type GuestSpec, guestSpecSchema } from '../../domain/agent-contract.ts';
import type { DesiredState, MigrationRecord } from '../guest-rules.ts';

/** What survives an agent restart, in <agentDir>/guests/<id>/{spec.json,state.json}. */
export interface StoredGuest {
  spec: GuestSpec;
  desired: DesiredState;
  everStarted: boolean;
  migration: MigrationRecord | null;
  /** The QEMU process last started for the guest. */
  pid: number | null;
}

type StoredState = Omit<StoredGuest, 'spec'>;

export class GuestStore {
  /** The spec.json each guest's directory holds, as this store wrote it: a guest's spec rarely changes. */
  private readonly writtenSpecs = new Map<string, string>();

  constructor(private readonly agentDir: string) {}

  get root(): string {
    return path.join(this.agentDir, 'guests');
  }

  dir(id: string): string {
    return path.join(this.root, id);
  }

  async ids(): Promise<string[]> {
    const entries = await readdir(this.root, { withFileTypes: true }).catch(() => []);
    return entries.filter((entry) => entry.isDirectory()).map((entry) => entry.name);
  }

  async load(id: string): Promise<StoredGuest | null> {
    try {
      const spec = guestSpecSchema.parse(
        JSON.parse(await readFile(path.join(this.dir(id), 'spec.json'), 'utf8')),
      );
      const state = JSON.parse(await readFile(path.join(this.dir(id), 'state.json'), 'utf8')) as StoredState;
      return { spec, ...state };
    } catch {
      return null;
    }
  }

  async save(guest: StoredGuest): Promise<void> {
    const dir = this.dir(guest.spec.id);
    await mkdir(dir, { recursive: true });
    const { spec, ...state } = guest;
    const specText = JSON.stringify(spec, null, 2);
    if (this.writtenSpecs.get(spec.id) !== specText) {
      await atomicWrite(path.join(dir, 'spec.json'), specText);
      this.writtenSpecs.set(spec.id, specText);
    }
    await atomicWrite(path.join(dir, 'state.json'), JSON.stringify(state, null, 2));
  }

  async remove(id: string): Promise<void> {
    this.writtenSpecs.delete(id);
    // A QEMU that is still exiting can create a file (serial log, socket) while the tree is removed:
    // rm then retries its ENOTEMPTY instead of failing the cleanup.
    await rm(this.dir(id), { recursive: true, force: true, maxRetries: 10, retryDelay: 50 });
  }
}

async function atomicWrite(file: string, content: string): Promise<void> {
  const partial = `${file}.${randomBytes(4).toString('hex')}.tmp`;
  await writeFile(partial, `${content}\n`);
  await rename(partial, file);
}
