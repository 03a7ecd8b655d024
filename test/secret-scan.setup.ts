import { afterAll } from 'vitest';
import { takeLeaks, watchProcessOutput } from './helpers/secret-ledger.ts';

// Every integration file: nothing it printed, and nothing its stacks answered, logged or stored, may hold a
// secret the file created (test/helpers/secret-ledger.ts).
watchProcessOutput();

afterAll(() => {
  const leaks = takeLeaks();
  if (leaks.length > 0)
    throw new Error(`secrets leaked in this file:\n  ${[...new Set(leaks)].join('\n  ')}`);
});
