import { accessSync, constants } from 'node:fs';
import { EnvReader, type Env, type NamedFile } from './env-reader.ts';

/**
 * The one impure step of configuration: a process's entry point calls this first, with process.env. Every
 * problem of the environment, and every named file it cannot read, is printed at once, each naming its
 * variable, and the process exits 2 before it connects anywhere.
 */
export function configOrExit<T>(processName: string, read: (r: EnvReader) => T, env: Env): T {
  const reader = new EnvReader(env);
  const config = read(reader);
  const problems = [...reader.problems, ...unreadable(reader.files)];
  if (problems.length === 0) return config;
  const count = `${problems.length} configuration problem${problems.length === 1 ? '' : 's'}`;
  console.error(
    `${processName}: cannot start, ${count} (docs/deployment.md lists every variable):\n` +
      problems.map((p) => `  ${p}`).join('\n'),
  );
  process.exit(2);
}

function unreadable(files: readonly NamedFile[]): string[] {
  const problems: string[] = [];
  for (const { variable, path } of files) {
    try {
      accessSync(path, constants.R_OK);
    } catch (error) {
      problems.push(`${variable}: cannot read ${path} (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
    }
  }
  return problems;
}
