import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEtcd } from '../../scripts/services/etcd.ts';
import { startInflux } from '../../scripts/services/influx.ts';
import { prepareClusterDir } from '../../scripts/services/postgres-cluster-dir.ts';
import { startPostgres } from '../../scripts/services/postgres.ts';
import { listProcesses, processGroupMembers } from '../../scripts/services/proc-table.ts';
import { startProcess, type ManagedProcess } from '../../scripts/services/process.ts';
import { findTemporalCli } from '../../scripts/services/temporal-cli.ts';
import { ensureSearchAttributes, runTemporalCli } from '../../scripts/services/temporal-operator.ts';
import { startTemporal } from '../../scripts/services/temporal.ts';
import { loadTemporalDevConfig } from '../../scripts/services/temporal-config.ts';

let root: string;

beforeAll(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'vmmig-infra-'));
  fs.chmodSync(root, 0o755);
});

afterAll(() => {
  fs.rmSync(root, { recursive: true, force: true });
});

/** Nothing of the stopped server may survive: not its process group, not any process naming its dir. */
function expectNothingLeft(child: ManagedProcess, dir: string): void {
  expect(child.isRunning()).toBe(false);
  expect(processGroupMembers(child.pid)).toEqual([]);
  expect(listProcesses().filter((p) => p.cmdline.includes(dir))).toEqual([]);
}

async function query(url: string, sql: string): Promise<pg.QueryResult> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await client.query(sql);
  } finally {
    await client.end();
  }
}

describe('startPostgres', () => {
  it('initialises a cluster once, answers SQL, and keeps the data across a restart', async () => {
    const dir = path.join(root, 'postgres');
    const logFile = path.join(root, 'logs', 'postgres.log');
    const first = await startPostgres({ dir, logFile, durable: false });
    expect(first.url).toBe(`postgres://postgres@127.0.0.1:${first.port}/postgres`);
    await query(first.url, 'CREATE TABLE kept (n int); INSERT INTO kept VALUES (42)');
    await first.stop();
    expectNothingLeft(first.process, dir);

    const second = await startPostgres({ dir, logFile, durable: false });
    try {
      const { rows } = await query(second.url, 'SELECT n FROM kept');
      expect(rows).toEqual([{ n: 42 }]);
      expect(fs.readFileSync(logFile, 'utf8').match(/--- .* postgres: /g)).toHaveLength(2);
    } finally {
      await second.stop();
    }
    expectNothingLeft(second.process, dir);
  });
});

describe('a cluster the postgres user cannot reach', () => {
  // Forced unreachable, with its own fallback root, so the test neither needs /root nor writes /var/lib/vmmig.
  const setup = (name: string) => {
    const dataDir = path.join(root, name);
    const fallbackRoot = path.join(root, `${name}-fallback`);
    return {
      dataDir,
      dir: path.join(dataDir, 'postgres'),
      logFile: path.join(dataDir, 'logs', 'postgres.log'),
      clusterDirOptions: { fallbackRoot, unreachable: () => true },
      fallbackRoot,
    };
  };

  it('lives in the fallback, linked from the data dir, and goes when the data dir is deleted', async () => {
    const { dataDir, dir, logFile, clusterDirOptions, fallbackRoot } = setup('deleted-data-dir');
    const first = await startPostgres({ dir, logFile, durable: false, clusterDirOptions });
    try {
      expect(path.dirname(first.clusterDir)).toBe(fallbackRoot);
      expect(fs.readlinkSync(dir)).toBe(first.clusterDir);
      expect(first.wipedOrphan).toBeUndefined();
      await query(first.url, 'CREATE TABLE old_hosts (n int)');
    } finally {
      await first.stop();
    }

    fs.rmSync(dataDir, { recursive: true, force: true });
    const second = await startPostgres({ dir, logFile, durable: false, clusterDirOptions });
    try {
      expect(second.clusterDir).toBe(first.clusterDir);
      expect(second.wipedOrphan).toBe(first.clusterDir);
      const { rows } = await query(second.url, "SELECT to_regclass('old_hosts') AS t");
      expect(rows).toEqual([{ t: null }]);
      expect(fs.readFileSync(logFile, 'utf8')).toContain(`wiped its old cluster ${first.clusterDir}`);
    } finally {
      await second.stop();
    }
    expectNothingLeft(second.process, dir);
  });

  it('follows a moved data dir to its cluster instead of starting an empty one', () => {
    const { dataDir, dir, clusterDirOptions } = setup('moved-data-dir');
    const first = prepareClusterDir(dir, clusterDirOptions);
    fs.writeFileSync(path.join(first.path, 'PG_VERSION'), '15\n');
    const movedDataDir = `${dataDir}-moved`;
    fs.renameSync(dataDir, movedDataDir);
    const moved = prepareClusterDir(path.join(movedDataDir, 'postgres'), clusterDirOptions);
    expect(moved).toEqual({ path: first.path });
    expect(fs.existsSync(path.join(moved.path, 'PG_VERSION'))).toBe(true);
  });
});

describe('startEtcd', () => {
  it('serves reads and writes on loopback and stops cleanly', async () => {
    const dir = path.join(root, 'etcd');
    const etcd = await startEtcd({ dir, logFile: path.join(root, 'logs', 'etcd.log') });
    try {
      expect(etcd.endpoints).toEqual([`http://127.0.0.1:${etcd.clientPort}`]);
      const b64 = (s: string): string => Buffer.from(s).toString('base64');
      const endpoint = etcd.endpoints[0] as string;
      const put = await fetch(`${endpoint}/v3/kv/put`, {
        method: 'POST',
        body: JSON.stringify({ key: b64('/infra-test'), value: b64('yes') }),
      });
      expect(put.status).toBe(200);
      const range = (await (
        await fetch(`${endpoint}/v3/kv/range`, {
          method: 'POST',
          body: JSON.stringify({ key: b64('/infra-test') }),
        })
      ).json()) as { kvs: { value: string }[] };
      expect(Buffer.from(range.kvs[0]?.value ?? '', 'base64').toString()).toBe('yes');
    } finally {
      await etcd.stop();
    }
    expectNothingLeft(etcd.process, dir);
  });
});

describe('startInflux', () => {
  it('answers /ping and InfluxQL on loopback only and stops cleanly', async () => {
    const dir = path.join(root, 'influx');
    const influx = await startInflux({ dir, logFile: path.join(root, 'logs', 'influxd.log') });
    try {
      expect((await fetch(`${influx.url}/ping`)).status).toBe(204);
      const create = await fetch(`${influx.url}/query`, {
        method: 'POST',
        body: new URLSearchParams({ q: 'CREATE DATABASE infra_test' }),
      });
      expect(create.status).toBe(200);
      const write = await fetch(`${influx.url}/write?db=infra_test`, {
        method: 'POST',
        body: 'cpu,host_id=h1 usage_active=12.5',
      });
      expect(write.status).toBe(204);
      const config = fs.readFileSync(path.join(dir, 'influxdb.conf'), 'utf8');
      expect(config).toContain(`bind-address = "127.0.0.1:${influx.rpcPort}"`);
      expect(config).toContain('reporting-disabled = true');
    } finally {
      await influx.stop();
    }
    expectNothingLeft(influx.process, dir);
  });
});

describe('startTemporal', () => {
  it('registers search attributes that --search-attribute ignores on an existing db file', async () => {
    const cli = findTemporalCli();
    const dbFile = path.join(root, 'temporal', 'temporal.db');
    const logFile = path.join(root, 'logs', 'temporal.log');
    const base = { cli, dbFile, namespace: 'default', logFile, headless: true };

    const first = await startTemporal({ ...base, searchAttributes: { InfraFirst: 'Keyword' } });
    expect(first.address).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(first.uiUrl).toBeNull();
    await first.stop();
    expectNothingLeft(first.process, dbFile);

    const second = await startTemporal({
      ...base,
      searchAttributes: { InfraFirst: 'Keyword', InfraLater: 'Keyword' },
    });
    try {
      const target = { cli, address: second.address, namespace: 'default' };
      const listed = JSON.parse(
        await runTemporalCli(target, ['operator', 'search-attribute', 'list', '--output', 'json']),
      ) as { customAttributes: Record<string, string> };
      expect(listed.customAttributes).toMatchObject({
        InfraFirst: 'INDEXED_VALUE_TYPE_KEYWORD',
        InfraLater: 'INDEXED_VALUE_TYPE_KEYWORD',
      });
      expect(await ensureSearchAttributes(target, { InfraFirst: 'Keyword', InfraLater: 'Keyword' })).toEqual(
        [],
      );
    } finally {
      await second.stop();
    }
    expectNothingLeft(second.process, dbFile);
  });
});

describe('the dev Temporal server’s SQLite file', () => {
  it('is in write-ahead-log mode with the pragmas of temporal.dev.yaml', async () => {
    const { sqlitePragmas } = loadTemporalDevConfig();
    expect(sqlitePragmas).toMatchObject({ journal_mode: 'wal' });
    const dbFile = path.join(root, 'temporal-wal', 'temporal.db');
    const server = await startTemporal({
      cli: findTemporalCli(),
      dbFile,
      sqlitePragmas,
      namespace: 'default',
      logFile: path.join(root, 'logs', 'temporal-wal.log'),
      headless: true,
      searchAttributes: {},
    });
    try {
      expect(fs.existsSync(`${dbFile}-wal`)).toBe(true);
    } finally {
      await server.stop();
    }
    // Bytes 18 and 19 of an SQLite file's header (the file format's write and read versions) are 2 in WAL
    // mode and 1 with a rollback journal (sqlite.org/fileformat.html, "The Database Header").
    const header = fs.readFileSync(dbFile).subarray(18, 20);
    expect([...header]).toEqual([2, 2]);
  });
});

describe('startProcess', () => {
  it('kills a process that ignores SIGTERM, with its children, after the grace period', async () => {
    const marker = path.join(root, 'stubborn-marker');
    const child = startProcess({
      name: 'stubborn',
      command: 'bash',
      args: ['-c', `trap '' TERM; sleep 300 & sleep 301 # ${marker}`],
      logFile: path.join(root, 'logs', 'stubborn.log'),
      graceMs: 300,
    });
    await expect.poll(() => processGroupMembers(child.pid).length).toBe(3);
    const started = Date.now();
    await child.stop();
    expect(Date.now() - started).toBeLessThan(5_000);
    expectNothingLeft(child, marker);
  });

  it('reports a command that cannot start as an exit, with a log line', async () => {
    const logFile = path.join(root, 'logs', 'missing.log');
    const child = startProcess({
      name: 'missing',
      command: path.join(root, 'no-such-binary'),
      args: [],
      logFile,
    });
    expect((await child.exited).code).toBe(127);
    await child.stop();
    expect(fs.readFileSync(logFile, 'utf8')).toContain('could not start');
  });
});

describe('findTemporalCli', () => {
  it('finds the CLI setup.sh installed, and it runs', () => {
    const cli = findTemporalCli();
    expect(execFileSync(cli, ['--version'], { encoding: 'utf8' })).toMatch(/Server 1\.29/);
  });
});
