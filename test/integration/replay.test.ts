import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { Worker } from '@temporalio/worker';
import { describe, expect, it } from 'vitest';
import { workflowsPath } from '../../workers/worker.ts';

const historiesDir = path.join('test', 'histories');

/**
 * Histories recorded from real runs (RECORD_HISTORIES=1 with the live-migrate tests) must replay against the
 * current workflow code: a change that would break a migration in flight fails here.
 */
describe('workflow replay', async () => {
  const files = (await readdir(historiesDir)).filter((f) => f.endsWith('.json'));

  it('has recorded histories to replay', () => {
    expect(files.length).toBeGreaterThan(0);
  });

  it.each(files)('%s replays deterministically', async (file) => {
    const history: unknown = JSON.parse(await readFile(path.join(historiesDir, file), 'utf8'));
    await Worker.runReplayHistory({ workflowsPath }, history);
  });
});
