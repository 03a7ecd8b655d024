import { spawn, type ChildProcess } from 'node:child_process';
import { inject } from 'vitest';
import type { MiniStack } from './mini-stack.ts';
import { waitFor } from './wait.ts';

/** The real worker entry point in its own process for the stack, so it can die the way a host does: SIGKILL. */
export function startWorkerProcess(stack: MiniStack, env: NodeJS.ProcessEnv = {}): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'workers/main.ts'], {
    env: {
      ...process.env,
      DATABASE_URL: stack.db.url,
      TEMPORAL_ADDRESS: inject('temporalAddress'),
      TEMPORAL_NAMESPACE: inject('temporalNamespace'),
      TEMPORAL_TASK_QUEUE: stack.taskQueue,
      ETCD_ENDPOINTS: inject('etcdEndpoints').join(','),
      ETCD_PREFIX: stack.etcdPrefix,
      AGENT_CREDENTIAL_KEY: stack.agentCredentialKey,
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  return waitFor('the worker process to poll', async () => {
    if (child.exitCode !== null) throw new Error(`worker exited ${child.exitCode}: ${output}`);
    return output.includes('worker polling') ? child : null;
  });
}
