import { parseOptions } from './options.ts';
import { measure } from './measure.ts';

/**
 * The measurement in its own process, started by index.ts as `node --expose-gc --import tsx`, so the heap
 * figures come after real collections and the peak RSS is the benchmark's alone.
 */
try {
  measure(parseOptions(process.argv.slice(2)));
} catch (error) {
  console.error(error instanceof Error ? (error.stack ?? error.message) : String(error));
  process.exitCode = 1;
}
