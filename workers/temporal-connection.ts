import { readFile } from 'node:fs/promises';
import type { TLSConfig } from '@temporalio/client';
import type { TemporalSettings } from '../domain/config.ts';

/** What both Connection.connect (client) and NativeConnection.connect (worker) take to reach the cluster. */
export interface TemporalConnectionOptions {
  address: string;
  tls?: TLSConfig;
  apiKey?: string;
}

/**
 * The connection options of the configured cluster: plain on the dev stack, TLS or mTLS and an API key for a
 * production one (docs/security.md). The files are read here, once, so a missing one fails at start-up naming it.
 */
export async function temporalConnectionOptions(
  settings: TemporalSettings,
): Promise<TemporalConnectionOptions> {
  const options: TemporalConnectionOptions = { address: settings.address };
  const { tls } = settings;
  if (tls) {
    options.tls = {
      ...(tls.serverName ? { serverNameOverride: tls.serverName } : {}),
      ...(tls.caFile ? { serverRootCACertificate: await read(tls.caFile, 'TEMPORAL_TLS_CA') } : {}),
      ...(tls.clientCertFile && tls.clientKeyFile
        ? {
            clientCertPair: {
              crt: await read(tls.clientCertFile, 'TEMPORAL_TLS_CERT'),
              key: await read(tls.clientKeyFile, 'TEMPORAL_TLS_KEY'),
            },
          }
        : {}),
    };
  }
  if (settings.apiKeyFile) {
    options.apiKey = (await read(settings.apiKeyFile, 'TEMPORAL_API_KEY_FILE')).toString('utf8').trim();
  }
  return options;
}

async function read(file: string, setting: string): Promise<Buffer> {
  try {
    return await readFile(file);
  } catch (err) {
    throw new Error(`${setting}: cannot read ${file}: ${(err as Error).message}`);
  }
}
