import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import config from '../../vitest.config.ts';
import { repoRoot } from '../../scripts/services/repo-root.ts';

/**
 * The unit project runs without the servers of test/global-setup.ts (`npm run test:unit`): no file it runs,
 * nor anything those files import from the repo, may take the global setup's values (vitest's `inject`:
 * test/helpers/mini-stack.ts and the like), and none imports a server starter itself. A test that needs
 * servers belongs in the integration project.
 */
const SERVER_STARTERS = ['temporal', 'postgres', 'etcd', 'influx', 'stack-servers'].map((name) =>
  path.join(repoRoot, 'scripts', 'services', `${name}.ts`),
);
const IMPORTS_INJECT = /import\s*\{[^}]*\binject\b[^}]*\}\s*from\s*'vitest'/;
const RELATIVE_IMPORT = /(?:from\s*|import\s*\(?\s*)'(\.{1,2}\/[^']+\.ts)'/g;

function unitInclude(): string[] {
  const unit = config.test?.projects?.find(
    (project) => typeof project === 'object' && 'test' in project && project.test?.name === 'unit',
  );
  const include = typeof unit === 'object' && 'test' in unit ? unit.test?.include : undefined;
  if (!include) throw new Error('vitest.config.ts has no unit project with an include');
  return include;
}

/** `dir/**\/*.test.ts` style globs: `**\/` is any depth of directories, `*` any name part. */
function globMatcher(glob: string): RegExp {
  const source = glob
    .split(/(\*\*\/|\*)/)
    .map((part) => {
      if (part === '**/') return '(?:[^/]+/)*';
      if (part === '*') return '[^/]*';
      return part.replace(/[.+?^${}()|[\]\\]/g, '\\$&');
    })
    .join('');
  return new RegExp(`^${source}$`);
}

function filesUnder(dir: string): string[] {
  return readdirSync(path.join(repoRoot, dir), { withFileTypes: true, recursive: true })
    .filter((entry) => entry.isFile())
    .map((entry) => path.relative(repoRoot, path.join(entry.parentPath, entry.name)));
}

function unitTestFiles(): string[] {
  const matchers = unitInclude().map(globMatcher);
  const roots = new Set(unitInclude().map((glob) => glob.split('/')[0] as string));
  return [...roots].flatMap(filesUnder).filter((file) => matchers.some((m) => m.test(file)));
}

/** Every repo file `entry` reaches through relative imports, with the chain that reaches it. */
function reachable(entry: string): Map<string, string[]> {
  const seen = new Map<string, string[]>([[entry, [entry]]]);
  const queue = [entry];
  for (let file = queue.shift(); file !== undefined; file = queue.shift()) {
    const text = readFileSync(file, 'utf8');
    for (const [, specifier] of text.matchAll(RELATIVE_IMPORT)) {
      const target = path.resolve(path.dirname(file), specifier as string);
      if (seen.has(target)) continue;
      seen.set(target, [...(seen.get(file) as string[]), target]);
      queue.push(target);
    }
  }
  return seen;
}

describe('the unit project needs no servers', () => {
  const files = unitTestFiles();

  it('finds the unit test files, the agent rules among them', () => {
    expect(files.length).toBeGreaterThan(50);
    expect(files).toContain(path.join('test', 'unit', 'agent', 'guest-rules.test.ts'));
  });

  it.each(files)('%s reaches no inject() and imports no server starter', (file) => {
    const problems: string[] = [];
    for (const [module, chain] of reachable(path.join(repoRoot, file))) {
      const via = chain.map((step) => path.relative(repoRoot, step)).join(' -> ');
      if (chain.length === 2 && SERVER_STARTERS.includes(module)) problems.push(`starts servers: ${via}`);
      if (IMPORTS_INJECT.test(readFileSync(module, 'utf8')))
        problems.push(`imports inject from vitest: ${via}`);
    }
    expect(problems).toEqual([]);
  });
});
