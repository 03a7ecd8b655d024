import { spawn } from 'node:child_process';
import { createServer, type Server } from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/**
 * Each entry point, started with a bad environment, exits 2 naming every bad variable before it connects
 * anywhere: a listener stands where Temporal and InfluxDB would be and must see no connection.
 */
const repoRoot = path.resolve(import.meta.dirname, '../..');
const tsx = path.join(repoRoot, 'node_modules/.bin/tsx');

let listener: Server;
let connections = 0;
let address = '';
beforeAll(async () => {
  listener = createServer((socket) => {
    connections += 1;
    socket.destroy();
  });
  await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
  const info = listener.address();
  address = typeof info === 'object' && info !== null ? `127.0.0.1:${info.port}` : '';
});
afterAll(() => new Promise<void>((resolve) => listener.close(() => resolve())));

function run(entry: string, env: Record<string, string>): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    // Only what is given: none of this shell's variables.
    const child = spawn(tsx, [entry], {
      cwd: repoRoot,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/root', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.once('error', reject);
    child.once('exit', (code) => resolve({ code, stderr }));
  });
}

// Each run loads its entry point's modules through tsx: seconds, not milliseconds.
describe('a misconfigured process fails fast, naming every variable', { timeout: 60_000 }, () => {
  it('api/main.ts', async () => {
    const { code, stderr } = await run('api/main.ts', {
      TEMPORAL_ADDRESS: address,
      INFLUX_URL: `http://${address}`,
      API_PORT: 'http',
      DATABASE_URL: 'mysql://root:hunter2@db/vmmig',
      ETCD_ENDPOINTS: 'htp://etcd:2379',
      TEMPORAL_TLS_CA: '/nonexistent/temporal-ca.pem',
    });
    expect(code).toBe(2);
    expect(stderr).toContain('api: cannot start, 6 configuration problems');
    for (const line of [
      "API_PORT must be an integer from 1 to 65535, got 'http'",
      'API_TOKEN is required',
      'AGENT_CREDENTIAL_KEY is required',
      'DATABASE_URL is not a postgres:// or postgresql:// URL',
      "ETCD_ENDPOINTS: 'htp://etcd:2379' is not an http(s) URL",
      'TEMPORAL_TLS_CA: cannot read /nonexistent/temporal-ca.pem (ENOENT)',
    ]) {
      expect(stderr).toContain(line);
    }
    expect(stderr).not.toContain('hunter2');
    expect(connections).toBe(0);
  });

  it('workers/main.ts', async () => {
    const { code, stderr } = await run('workers/main.ts', {
      TEMPORAL_ADDRESS: address,
      INFLUX_API: 'flux',
      INFLUX_ORG: 'ops',
      INFLUX_TOKEN: 'tok==',
      INFLUX_BUCKET: 'telegraf',
      DATABASE_URL: 'postgres://db/vmmig?sslmode=verify-ca',
    });
    expect(code).toBe(2);
    expect(stderr).toContain('worker: cannot start, 2 configuration problems');
    expect(stderr).toContain('AGENT_CREDENTIAL_KEY is required');
    expect(stderr).toContain('DATABASE_TLS_CA is required with sslmode=verify-ca');
    expect(connections).toBe(0);
  });

  it('agent/main.ts', async () => {
    const { code, stderr } = await run('agent/main.ts', {
      INFLUX_URL: `http://${address}`,
      AGENT_PORT: '0',
      AGENT_DRIVER: 'xen',
      ETCD_ENDPOINTS: 'https://etcd:2379',
      ETCD_TLS_CA: '/nonexistent/etcd-ca.pem',
      ETCD_USERNAME: 'agent',
    });
    expect(code).toBe(2);
    for (const variable of [
      'AGENT_NAME',
      'AGENT_DIR',
      'SHARED_STORAGE_DIR',
      'AGENT_DRIVER',
      'ETCD_PASSWORD',
    ]) {
      expect(stderr).toContain(variable);
    }
    expect(stderr).toContain('ETCD_TLS_CA: cannot read /nonexistent/etcd-ca.pem (ENOENT)');
    expect(connections).toBe(0);
  });

  it('db/migrate.ts', async () => {
    const { code, stderr } = await run('db/migrate.ts', {});
    expect(code).toBe(2);
    expect(stderr).toContain('migrate: cannot start, 1 configuration problem');
    expect(stderr).toContain('DATABASE_URL is required');
  });
});
