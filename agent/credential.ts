import { chmod, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { HostFacts } from '../domain/agent-contract.ts';
import { errorMessage, type Logger } from './log.ts';

/** In the agent dir: this host's own credential (domain/host-credential.ts), written by enrolment, mode 0600. */
export const CREDENTIAL_FILE = 'credential';

export async function readCredentialFile(agentDir: string): Promise<string | null> {
  try {
    const value = (await readFile(path.join(agentDir, CREDENTIAL_FILE), 'utf8')).trim();
    return value === '' ? null : value;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
}

export async function writeCredentialFile(agentDir: string, credential: string): Promise<void> {
  const file = path.join(agentDir, CREDENTIAL_FILE);
  await writeFile(`${file}.tmp`, `${credential}\n`, { mode: 0o600 });
  await chmod(`${file}.tmp`, 0o600);
  await rename(`${file}.tmp`, file);
}

/** A refusal of the enrolment: retrying with the same token cannot help. */
export class EnrolmentRefused extends Error {}

/**
 * POST /v1/hosts/enrol with the one-time token: retried every second while the API is unreachable or failing
 * (5xx), given up at once on a refusal (4xx: used, expired, another host's token…). The API's answer: the host as
 * the inventory has it (with `peers`) and this host's credential.
 */
export async function enrol(options: {
  apiUrl: string;
  enrolmentToken: string;
  facts: () => Promise<HostFacts>;
  log: Logger;
  retryMs?: number;
  signal?: AbortSignal;
}): Promise<{ host: unknown; credential: string }> {
  let logged = false;
  for (;;) {
    options.signal?.throwIfAborted();
    try {
      const response = await fetch(`${options.apiUrl.replace(/\/$/, '')}/v1/hosts/enrol`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${options.enrolmentToken}` },
        body: JSON.stringify(await options.facts()),
        redirect: 'error',
        signal: AbortSignal.timeout(5000),
      });
      const body = (await response.json().catch(() => null)) as {
        host?: unknown;
        credential?: unknown;
        error?: { code?: string; message?: string };
      } | null;
      if (response.ok && typeof body?.credential === 'string') {
        return { host: body.host, credential: body.credential };
      }
      if (response.status >= 400 && response.status < 500) {
        throw new EnrolmentRefused(
          `enrolment refused: ${response.status} ${body?.error?.code ?? ''} ${body?.error?.message ?? ''}`.trim(),
        );
      }
      throw new Error(`API answered ${response.status}`);
    } catch (error) {
      if (error instanceof EnrolmentRefused) throw error;
      if (!logged) options.log(`enrolment with ${options.apiUrl} failed (${errorMessage(error)}); retrying`);
      logged = true;
    }
    await new Promise((resolve) => setTimeout(resolve, options.retryMs ?? 1000));
  }
}
