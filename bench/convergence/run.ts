import { installSignalHandlers, runCleanups, wasInterrupted } from '../lib/lifecycle.ts';
import { name, run, usage } from './index.ts';

/**
 * The convergence benchmark on its own: npx tsx bench/convergence/run.ts [--help | arguments]. Exit code 0
 * when it ran (a missed target is printed as MISSED), 1 on an error, 130 on Ctrl-C.
 */
async function main(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    console.log(usage);
    return 0;
  }
  installSignalHandlers();
  const started = Date.now();
  try {
    await run(argv);
  } catch (error) {
    if (wasInterrupted()) return 130;
    console.error(
      `\nbenchmark ${name} FAILED: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`,
    );
    await runCleanups();
    return 1;
  }
  console.log(`benchmark ${name} done in ${((Date.now() - started) / 1000).toFixed(0)} s`);
  return 0;
}

process.exitCode = await main(process.argv.slice(2));
