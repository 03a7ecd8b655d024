import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { dataDir, DEFAULTS, type Env } from '../domain/config.ts';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

export interface ApiConnection {
  baseUrl: string;
  token: string;
}

/** Env first (VMCTL_API_URL / API_URL, API_TOKEN), else what the dev stack wrote in its data dir. */
export function resolveConnection(env: Env): ApiConnection {
  const baseUrl = env.VMCTL_API_URL ?? env.API_URL ?? `http://127.0.0.1:${env.API_PORT ?? DEFAULTS.apiPort}`;
  let token = env.API_TOKEN;
  if (!token) {
    const tokenFile = path.join(dataDir(env, repoRoot), 'api-token');
    if (!existsSync(tokenFile)) {
      throw new Error(
        `no API token: set API_TOKEN or start the stack (npm start) so that ${tokenFile} exists`,
      );
    }
    token = readFileSync(tokenFile, 'utf8').trim();
  }
  return { baseUrl: baseUrl.replace(/\/$/, ''), token };
}
