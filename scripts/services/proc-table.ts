import fs from 'node:fs';

/** One live process as /proc shows it (Linux only, like the rest of the stack). */
export interface ProcEntry {
  pid: number;
  ppid: number;
  pgid: number;
  /** argv joined with spaces. */
  cmdline: string;
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Every process that is alive (zombies excluded: they hold no resources and cannot be killed). */
export function listProcesses(): ProcEntry[] {
  const entries: ProcEntry[] = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const entry = readProc(Number(name));
    if (entry) entries.push(entry);
  }
  return entries;
}

export function processGroupMembers(pgid: number): ProcEntry[] {
  return listProcesses().filter((p) => p.pgid === pgid);
}

function readProc(pid: number): ProcEntry | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name in parentheses may itself hold spaces and parentheses: parse after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const [state, ppid, pgid] = fields;
    if (state === 'Z' || state === 'X') return undefined;
    const cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim();
    return { pid, ppid: Number(ppid), pgid: Number(pgid), cmdline };
  } catch {
    return undefined; // exited while we looked
  }
}
