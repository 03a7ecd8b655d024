import fs from 'node:fs';
import path from 'node:path';
import { withLogTail } from './log-tail.ts';
import { repoRoot } from './repo-root.ts';
import { startProcess, type ManagedProcess } from './process.ts';

export interface NodeAppOptions {
  name: string;
  /** TypeScript entry point, relative to the repository root: 'api/main.ts'. */
  entry: string;
  env: NodeJS.ProcessEnv;
  logFile: string;
  graceMs?: number;
}

/**
 * Runs a TypeScript entry point as `node --import tsx <entry>`: the same loader as the tsx
 * command, but one process instead of a tsx wrapper relaying signals to a node child, so
 * SIGTERM reaches the program's own shutdown handler.
 */
export function startNodeApp(options: NodeAppOptions): ManagedProcess {
  return startProcess({
    name: options.name,
    command: process.execPath,
    args: ['--import', 'tsx', path.join(repoRoot, options.entry)],
    cwd: repoRoot,
    env: options.env,
    logFile: options.logFile,
    graceMs: options.graceMs ?? 20_000,
  });
}

/** Runs a one-shot entry point (a migration) and fails with its log tail when it does not exit 0. */
export async function runNodeApp(options: NodeAppOptions): Promise<void> {
  const child = startNodeApp(options);
  const { code, signal } = await child.exited;
  await child.stop();
  if (code !== 0)
    throw new Error(
      withLogTail(`${options.entry} failed (${signal ?? `exit code ${code}`})`, options.logFile),
    );
}

export function entryExists(entry: string): boolean {
  return fs.existsSync(path.join(repoRoot, entry));
}
