import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { TestProject } from 'vitest/node';
import { guestImageDir } from '../scripts/services/cache-dir.ts';
import { startStackServers } from '../scripts/services/stack-servers.ts';
import { findTemporalCli } from '../scripts/services/temporal-cli.ts';

/**
 * Starts the real servers once per run of the integration project, in a temporary directory, and hands
 * their addresses to the tests through provide() (the keys are declared in test/provided.d.ts). Fast rather
 * than safe: Temporal keeps its store in memory, PostgreSQL does not sync.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const started = Date.now();
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'vmmig-test-'));
  // mkdtemp makes the dir 0700; postgres runs as the postgres user and must be able to enter it.
  fs.chmodSync(root, 0o755);
  const temporalCli = findTemporalCli();
  const servers = await startStackServers({
    root,
    temporal: { cli: temporalCli, headless: true },
    postgres: { durable: false },
    etcd: {},
    influx: {},
  });

  project.provide('temporalAddress', servers.temporal.address);
  project.provide('temporalNamespace', servers.temporal.namespace);
  project.provide('temporalCli', temporalCli);
  project.provide('postgresAdminUrl', servers.postgres.url);
  project.provide('etcdEndpoints', servers.etcd.endpoints);
  project.provide('influxUrl', servers.influx.url);
  project.provide('guestImageDir', guestImageDir());
  console.log(
    `[global-setup] Temporal, PostgreSQL, etcd and InfluxDB up in ${Date.now() - started} ms (${root})`,
  );

  return async () => {
    await servers.stop();
    // Keep the logs of a failed run for reading; the data of the servers is of no use afterwards.
    for (const name of ['postgres', 'etcd', 'influx'])
      fs.rmSync(path.join(root, name), { recursive: true, force: true });
  };
}
