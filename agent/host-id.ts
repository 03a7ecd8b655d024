import { randomUUID } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** The host's identity: a uuid made once and kept in <agentDir>/host-id, so restarts keep it. */
export async function loadOrCreateHostId(agentDir: string): Promise<string> {
  const file = path.join(agentDir, 'host-id');
  try {
    const existing = (await readFile(file, 'utf8')).trim();
    if (UUID.test(existing)) return existing;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  await mkdir(agentDir, { recursive: true });
  const hostId = randomUUID();
  await writeFile(`${file}.tmp`, `${hostId}\n`);
  await rename(`${file}.tmp`, file);
  return hostId;
}
