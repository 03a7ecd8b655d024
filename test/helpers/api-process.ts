import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { inject } from 'vitest';
import type { ApiResponse, MiniStack } from './mini-stack.ts';
import { assertNoSecrets, rememberSecret } from './secret-ledger.ts';
import { waitFor } from './wait.ts';
import { collectOutput, PROCESS_START_TIMEOUT_MS, stopProcess } from './worker-process.ts';

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
      ...process.env,
      DATABASE_URL: stack.db.url,
      TEMPORAL_ADDRESS: inject('temporalAddress'),
      TEMPORAL_NAMESPACE: inject('temporalNamespace'),
      TEMPORAL_TASK_QUEUE: stack.taskQueue,
      ETCD_ENDPOINTS: inject('etcdEndpoints').join(','),
      ETCD_PREFIX: stack.etcdPrefix,
      AGENT_CREDENTIAL_KEY: stack.agentCredentialKey,
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
    stack: { ...stack, apiUrl: url, api: apiClient(url, stack.apiToken) },
    async stop() {
      await stopProcess(child, 'SIGTERM');
      assertNoSecrets(`the output of the API process at ${url}`, output.text);
    },
  };
}

/** JSON requests to an API with a bearer token; every answer is checked for the test's secrets. */
function apiClient(apiUrl: string, defaultToken: string): MiniStack['api'] {
  return async <T>(
    method: string,
    urlPath: string,
    body?: unknown,
    token = defaultToken,
  ): Promise<ApiResponse<T>> => {
    const res = await fetch(`${apiUrl}${urlPath}`, {
      method,
      headers: {
        authorization: `Bearer ${token}`,
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      },
      body: body !== undefined ? JSON.stringify(body) : undefined,
    });
    const text = await res.text();
    assertNoSecrets(`the answer ${res.status} to ${method} ${apiUrl}${urlPath}`, text);
    const parsed = (text ? JSON.parse(text) : null) as T;
    // As the stack's own API client: a token made now is a secret from here on.
    const made = parsed as { token?: string; credential?: string } | null;
    rememberSecret(`a token made by ${method} ${urlPath}`, made?.token);
    rememberSecret(`a credential made by ${method} ${urlPath}`, made?.credential);
    return { status: res.status, body: parsed };
  };
}

/** A port free a moment ago (the API takes a fixed port, not 0). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port')),
      );
    });
  });
}
