import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { readAgentOptions } from '../../agent/settings.ts';
import {
  EnvReader,
  readApiConfig,
  readMigrateConfig,
  readWorkerConfig,
  type Env,
} from '../../domain/config.ts';

const repoRoot = path.resolve(import.meta.dirname, '../..');

/** Every variable a reader looks at, seen through an environment that records each name asked for. */
function variablesRead(read: (r: EnvReader) => unknown): Set<string> {
  const seen = new Set<string>();
  const env = new Proxy({} as Env, {
    get: (_target, name) => {
      if (typeof name === 'string') seen.add(name);
      return undefined;
    },
  });
  read(new EnvReader(env));
  return seen;
}

/** Names in backquotes in the first column of a table row of docs/deployment.md. */
function documentedVariables(): Set<string> {
  const text = readFileSync(path.join(repoRoot, 'docs/deployment.md'), 'utf8');
  const names = new Set<string>();
  for (const line of text.split('\n')) {
    const firstCell = /^\|([^|]*)\|/.exec(line)?.[1] ?? '';
    for (const match of firstCell.matchAll(/`([A-Z][A-Z0-9_]+)`/g)) names.add(match[1]!);
  }
  return names;
}

describe('docs/deployment.md', () => {
  it('lists every variable a process reads in its table', () => {
    const documented = documentedVariables();
    const readers = {
      api: readApiConfig,
      worker: readWorkerConfig,
      migrate: readMigrateConfig,
      agent: readAgentOptions,
    };
    for (const [process, read] of Object.entries(readers)) {
      const missing = [...variablesRead(read)].filter((name) => name !== 'HOME' && !documented.has(name));
      expect(missing, `${process} reads these, the table does not list them`).toEqual([]);
    }
  });

  it('lists no variable that no process reads', () => {
    const read = new Set(
      [readApiConfig, readWorkerConfig, readMigrateConfig, readAgentOptions].flatMap((r) => [
        ...variablesRead(r),
      ]),
    );
    expect([...documentedVariables()].filter((name) => !read.has(name))).toEqual([]);
  });
});
