import { open } from 'node:fs/promises';
import type { Heartbeat } from '../../domain/agent-contract.ts';

const TAIL_BYTES = 4096;

/** The last `HB <n>` line of a serial log; `at` is the log's mtime, i.e. when the guest last wrote. */
export async function readHeartbeat(serialLogPath: string): Promise<Heartbeat | null> {
  let handle;
  try {
    handle = await open(serialLogPath, 'r');
  } catch {
    return null;
  }
  try {
    const stat = await handle.stat();
    const length = Math.min(stat.size, TAIL_BYTES);
    if (length === 0) return null;
    const buffer = Buffer.alloc(length);
    await handle.read(buffer, 0, length, stat.size - length);
    const counter = lastHeartbeatCounter(buffer.toString('latin1'));
    return counter === null ? null : { counter, at: stat.mtime.toISOString() };
  } finally {
    await handle.close();
  }
}

export function lastHeartbeatCounter(text: string): number | null {
  const matches = [...text.matchAll(/^HB (\d+)\r?$/gm)];
  const last = matches.at(-1);
  return last === undefined ? null : Number(last[1]);
}
