import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { SearchAttributeType } from './temporal-config.ts';

const execFileAsync = promisify(execFile);

export interface TemporalTarget {
  cli: string;
  address: string;
  namespace: string;
}

/** Runs one `temporal` client command against the target and returns its stdout. */
export async function runTemporalCli(target: TemporalTarget, args: readonly string[]): Promise<string> {
  const { stdout } = await execFileAsync(
    target.cli,
    [...args, '--address', target.address, '--namespace', target.namespace, '--command-timeout', '5s'],
    // The CLI reads TEMPORAL_* variables as defaults; explicit flags are the whole truth here.
    { env: withoutTemporalVariables(), timeout: 15_000, maxBuffer: 4 * 1024 * 1024 },
  );
  return stdout;
}

/** True once the front end answers and the namespace exists. */
export async function namespaceIsReady(target: TemporalTarget): Promise<boolean> {
  await runTemporalCli(target, ['operator', 'namespace', 'describe', '--output', 'json']);
  return true;
}

/**
 * Registers the custom search attributes the namespace lacks. Idempotent: `--search-attribute`
 * on start-dev only applies when the namespace is first created, so this runs at every start.
 */
export async function ensureSearchAttributes(
  target: TemporalTarget,
  wanted: Record<string, SearchAttributeType>,
): Promise<string[]> {
  const listed = JSON.parse(
    await runTemporalCli(target, ['operator', 'search-attribute', 'list', '--output', 'json']),
  ) as { customAttributes?: Record<string, string> };
  const existing = new Set(Object.keys(listed.customAttributes ?? {}));
  const missing = Object.entries(wanted).filter(([name]) => !existing.has(name));
  for (const type of new Set(missing.map(([, t]) => t))) {
    const names = missing.filter(([, t]) => t === type).flatMap(([name]) => ['--name', name]);
    await runTemporalCli(target, ['operator', 'search-attribute', 'create', ...names, '--type', type]);
  }
  return missing.map(([name]) => name);
}

function withoutTemporalVariables(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('TEMPORAL_')));
}
