import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { addCleanup } from '../lib/lifecycle.ts';
import { measure } from './measure.ts';
import { parseOptions, usage as optionsUsage } from './options.ts';

export const name = 'alert-planner';

export const summary =
  'planAlertMoves on a synthetic fleet (10,000 hosts, 200,000 guests): time, heap, plan counts';

export const usage = `${optionsUsage}

Runs in a child \`node --expose-gc --import tsx\` process (the heap figures need global.gc), unless this
process already has global.gc.`;

const here = path.dirname(fileURLToPath(import.meta.url));

export async function run(args: string[]): Promise<void> {
  const options = parseOptions(args);
  if (typeof (globalThis as { gc?: unknown }).gc === 'function') {
    measure(options);
    return;
  }
  const child = spawn(
    process.execPath,
    ['--expose-gc', '--import', 'tsx', path.join(here, 'child.ts'), ...args],
    { cwd: path.resolve(here, '../..'), stdio: 'inherit' },
  );
  addCleanup(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
  });
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (exitCode, signal) => resolve(signal ? 128 : exitCode));
  });
  if (code !== 0) throw new Error(`the measuring process ended with code ${code}`);
}
