import { installSignalHandlers, runCleanups, wasInterrupted } from './lib/lifecycle.ts';
import * as alertPlanner from './alert-planner/index.ts';
import * as convergence from './convergence/index.ts';
import * as evacuation from './evacuation/index.ts';
import * as fleet from './fleet/index.ts';
import * as hostDown from './host-down.ts';
import * as liveMigrate from './live-migrate/index.ts';
import * as replay from './replay/index.ts';

/**
 * Benchmarks print figures and ratios; they are not tests. Exit code 0 when every benchmark ran (a
 * missed target is printed as MISSED, not turned into a failure), 1 on an error, 130 on Ctrl-C.
 *
 *   npm run bench                          every benchmark
 *   npm run bench -- live-migrate [args]   one, with its own arguments (see --help)
 */
interface Benchmark {
  name: string;
  summary: string;
  usage: string;
  run(args: string[]): Promise<void>;
}

const benchmarks: Benchmark[] = [liveMigrate, convergence, alertPlanner, replay, hostDown, evacuation, fleet];

function help(): string {
  return [
    'usage: npm run bench [-- <benchmark> [arguments]]',
    '',
    'benchmarks:',
    ...benchmarks.map((b) => `  ${b.name.padEnd(14)} ${b.summary}`),
    '',
    ...benchmarks.map((b) => b.usage),
  ].join('\n');
}

async function main(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    console.log(help());
    return 0;
  }
  const [first, ...rest] = argv;
  let selected: { benchmark: Benchmark; args: string[] }[];
  if (first === undefined || first.startsWith('-')) {
    if (first !== undefined && benchmarks.length > 1) {
      console.error(`arguments apply to one benchmark: name it first\n\n${help()}`);
      return 1;
    }
    selected = benchmarks.map((benchmark) => ({ benchmark, args: argv }));
  } else {
    const benchmark = benchmarks.find((b) => b.name === first);
    if (!benchmark) {
      console.error(`no benchmark '${first}'\n\n${help()}`);
      return 1;
    }
    selected = [{ benchmark, args: rest }];
  }
  installSignalHandlers();
  for (const { benchmark, args } of selected) {
    const started = Date.now();
    try {
      await benchmark.run(args);
    } catch (error) {
      if (wasInterrupted()) return 130;
      console.error(
        `\nbenchmark ${benchmark.name} FAILED: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`,
      );
      await runCleanups();
      return 1;
    }
    console.log(`benchmark ${benchmark.name} done in ${((Date.now() - started) / 1000).toFixed(0)} s`);
  }
  return 0;
}

process.exitCode = await main(process.argv.slice(2));
