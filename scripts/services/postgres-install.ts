import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

/**
 * Where initdb and postgres live: PG_BIN_DIR if set, else Debian's newest
 * /usr/lib/postgresql/<major>/bin (Debian keeps them off PATH), else pg_config --bindir.
 */
export function postgresBinDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.PG_BIN_DIR) return env.PG_BIN_DIR;
  const debianRoot = '/usr/lib/postgresql';
  if (fs.existsSync(debianRoot)) {
    const majors = fs
      .readdirSync(debianRoot)
      .filter((name) => fs.existsSync(path.join(debianRoot, name, 'bin', 'postgres')))
      .sort((a, b) => Number(b) - Number(a));
    if (majors[0]) return path.join(debianRoot, majors[0], 'bin');
  }
  try {
    return execFileSync('pg_config', ['--bindir'], { encoding: 'utf8' }).trim();
  } catch {
    throw new Error('PostgreSQL server binaries not found: run scripts/setup.sh (Debian package postgresql)');
  }
}

export const POSTGRES_USER = 'postgres';

/** PostgreSQL refuses to run as root, so root runs it as the postgres system user. */
export function mustDropRoot(): boolean {
  return process.getuid?.() === 0;
}

/**
 * The command line that runs `command` as the postgres user. setpriv execs the program itself
 * (no forking wrapper such as su or runuser), so our signals reach postgres directly.
 */
export function asPostgresUser(command: string, args: readonly string[]): [string, string[]] {
  if (!mustDropRoot()) return [command, [...args]];
  return [
    'setpriv',
    [`--reuid=${POSTGRES_USER}`, `--regid=${POSTGRES_USER}`, '--init-groups', '--', command, ...args],
  ];
}

/** Whether the postgres user may enter `dir` (checked by the kernel itself, ACLs included). */
export function postgresCanEnter(dir: string): boolean {
  const [command, args] = asPostgresUser('test', ['-x', dir]);
  return spawnSync(command, args, { stdio: 'ignore' }).status === 0;
}

export function chownToPostgres(target: string): void {
  if (!mustDropRoot()) return;
  execFileSync('chown', ['-R', `${POSTGRES_USER}:${POSTGRES_USER}`, target]);
}
