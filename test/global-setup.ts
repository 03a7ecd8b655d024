import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { TestProject } from 'vitest/node';
import { guestImageDir } from '../scripts/services/cache-dir.ts';
import { startEtcd } from '../scripts/services/etcd.ts';
import { startInflux } from '../scripts/services/influx.ts';
import { startPostgres } from '../scripts/services/postgres.ts';
import { findTemporalCli } from '../scripts/services/temporal-cli.ts';
import { loadTemporalDevConfig } from '../scripts/services/temporal-config.ts';
import { startTemporal } from '../scripts/services/temporal.ts';

/**
 * Starts the real servers once per run, in a temporary directory, and hands their addresses to
 * the tests through provide() (the keys are declared in test/provided.d.ts).
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const started = Date.now();
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'vmmig-test-'));
  // mkdtemp makes the dir 0700; postgres runs as the postgres user and must be able to enter it.
  fs.chmodSync(root, 0o755);
  const logs = path.join(root, 'logs');
  const temporalCli = findTemporalCli();
  const temporalConfig = loadTemporalDevConfig();

  const results = await Promise.allSettled([
    startTemporal({
      cli: temporalCli,
      namespace: temporalConfig.namespace,
      logFile: path.join(logs, 'temporal.log'),
      logLevel: temporalConfig.logLevel,
      searchAttributes: temporalConfig.searchAttributes,
      dynamicConfig: temporalConfig.dynamicConfig,
      headless: true,
    }),
    startPostgres({
      dir: path.join(root, 'postgres'),
      logFile: path.join(logs, 'postgres.log'),
      durable: false,
    }),
    startEtcd({ dir: path.join(root, 'etcd'), logFile: path.join(logs, 'etcd.log') }),
    startInflux({ dir: path.join(root, 'influx'), logFile: path.join(logs, 'influxd.log') }),
  ] as const);
  const [temporal, postgres, etcd, influx] = results;
  const stopAll = async (): Promise<void> => {
    await Promise.allSettled(results.map((r) => (r.status === 'fulfilled' ? r.value.stop() : undefined)));
  };
  const failure = results.find((r) => r.status === 'rejected');
  if (
    failure ||
    temporal.status !== 'fulfilled' ||
    postgres.status !== 'fulfilled' ||
    etcd.status !== 'fulfilled' ||
    influx.status !== 'fulfilled'
  ) {
    await stopAll();
    throw failure?.reason;
  }

  project.provide('temporalAddress', temporal.value.address);
  project.provide('temporalNamespace', temporal.value.namespace);
  project.provide('temporalCli', temporalCli);
  project.provide('postgresAdminUrl', postgres.value.url);
  project.provide('etcdEndpoints', etcd.value.endpoints);
  project.provide('influxUrl', influx.value.url);
  project.provide('guestImageDir', guestImageDir());
  console.log(
    `[global-setup] Temporal, PostgreSQL, etcd and InfluxDB up in ${Date.now() - started} ms (${root})`,
  );

  return async () => {
    await stopAll();
    // Keep the logs of a failed run for reading; the data of the servers is of no use afterwards.
    for (const name of ['postgres', 'etcd', 'influx'])
      fs.rmSync(path.join(root, name), { recursive: true, force: true });
  };
}
