import { spawn, type ChildProcess } from 'node:child_process';
import { inject } from 'vitest';
import { jsonApi } from '../../scripts/services/in-process-stack.ts';
import { freePort } from '../../scripts/services/ports.ts';
import { checkAnswerForSecrets, type MiniStack } from './mini-stack.ts';
import { assertNoSecrets } from './secret-ledger.ts';
import { waitFor } from './wait.ts';
import { collectOutput, PROCESS_START_TIMEOUT_MS, stackProcessEnv, stopProcess } from './worker-process.ts';

export interface ApiProcess {
  child: ChildProcess;
  url: string;
  /** The stack as seen through this process: every helper taking a MiniStack sends its requests here. */
  stack: MiniStack;
  /** SIGTERM (the API's graceful stop) and wait for the exit. */
  stop(): Promise<void>;
}

/**
 * The real API entry point (api/main.ts) in its own process for the stack's database, Temporal task queue and
 * etcd prefix, with the stack's admin token: a second API beside the stack's own, as production runs several.
 */
export async function startApiProcess(stack: MiniStack, env: NodeJS.ProcessEnv = {}): Promise<ApiProcess> {
  const port = await freePort();
  const child = spawn(process.execPath, ['--import', 'tsx', 'api/main.ts'], {
    env: {
      ...stackProcessEnv(stack),
      API_TOKEN: stack.apiToken,
      API_HOST: '127.0.0.1',
      API_PORT: String(port),
      INFLUX_URL: inject('influxUrl'),
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output = collectOutput(child, 'api');
  await waitFor(
    'the API process to listen',
    async () => {
      if (child.exitCode !== null) throw new Error(`API exited ${child.exitCode}: ${output.text}`);
      return output.text.includes('API listening on');
    },
    { timeoutMs: PROCESS_START_TIMEOUT_MS },
  );
  const url = `http://127.0.0.1:${port}`;
  return {
    child,
    url,
    stack: { ...stack, apiUrl: url, api: jsonApi(url, stack.apiToken, checkAnswerForSecrets) },
    async stop() {
      await stopProcess(child, 'SIGTERM');
      assertNoSecrets(`the output of the API process at ${url}`, output.text);
    },
  };
}
