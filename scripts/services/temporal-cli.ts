import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { vmmigCacheDir } from './cache-dir.ts';

export const TEMPORAL_CLI_VERSION = '1.5.1';

/**
 * The Temporal CLI, found the way scripts/setup.sh finds it: TEMPORAL_CLI if it names an
 * executable; else `temporal` on PATH if it reports version 1.5.1; else the copy setup.sh builds
 * into $VMMIG_CACHE/bin (a `go install` build reports 0.0.0-DEV, so that one is trusted by place).
 */
export function findTemporalCli(env: NodeJS.ProcessEnv = process.env): string {
  if (env.TEMPORAL_CLI) {
    if (isExecutable(env.TEMPORAL_CLI)) return path.resolve(env.TEMPORAL_CLI);
    throw new Error(`TEMPORAL_CLI=${env.TEMPORAL_CLI} is not an executable file`);
  }
  const onPath = findOnPath('temporal', env.PATH ?? '');
  if (onPath && reportsVersion(onPath, TEMPORAL_CLI_VERSION)) return onPath;
  const cached = path.join(vmmigCacheDir(env), 'bin', 'temporal');
  if (isExecutable(cached)) return cached;
  throw new Error(
    `Temporal CLI ${TEMPORAL_CLI_VERSION} not found (TEMPORAL_CLI, PATH, ${cached}): run 'bash scripts/setup.sh'`,
  );
}

function findOnPath(command: string, searchPath: string): string | undefined {
  return searchPath
    .split(path.delimiter)
    .filter((dir) => dir !== '')
    .map((dir) => path.join(dir, command))
    .find(isExecutable);
}

function reportsVersion(binary: string, version: string): boolean {
  const result = spawnSync(binary, ['--version'], { encoding: 'utf8', timeout: 10_000 });
  return (
    result.status === 0 && new RegExp(`version ${version.replaceAll('.', '\\.')}\\b`).test(result.stdout)
  );
}

function isExecutable(file: string): boolean {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}
