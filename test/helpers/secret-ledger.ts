import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';

/**
 * Every secret a test file creates (API and agent tokens, host credentials, enrolment tokens, private keys)
 * and the places it must never show: API responses, agent logs, the process's own output, the stack's
 * database rows (events, migrations, …) and its workflow histories. Each test file runs in its own process,
 * so the ledger is per file; test/secret-scan.setup.ts fails the file on any leak, and together the files are
 * the whole run.
 */

const secrets = new Map<string, string>();
const leaks: string[] = [];

/** Shorter values could match by chance (and are not secrets worth the name). */
const MIN_SECRET_LENGTH = 16;

export function rememberSecret(kind: string, value: string | null | undefined): void {
  if (typeof value === 'string' && value.length >= MIN_SECRET_LENGTH) secrets.set(value, kind);
}

/** The kinds of the remembered secrets `text` contains. */
export function secretsIn(text: string): string[] {
  const found: string[] = [];
  for (const [value, kind] of secrets) if (text.includes(value)) found.push(kind);
  return found;
}

/** Records a leak for the file's end (where throwing would be lost, e.g. inside a log write). */
export function noteLeaks(where: string, text: string): void {
  for (const kind of secretsIn(text)) leaks.push(`${kind} in ${where}`);
}

/** Throws at once naming what leaked where. */
export function assertNoSecrets(where: string, text: string): void {
  const found = secretsIn(text);
  if (found.length > 0) throw new Error(`secret leaked: ${found.join(', ')} in ${where}`);
}

export function takeLeaks(): string[] {
  return leaks.splice(0, leaks.length);
}

export function rememberedSecretCount(): number {
  return secrets.size;
}

/** Tees the process's stdout and stderr into the scan (console.log, the Temporal runtime's log lines, …). */
export function watchProcessOutput(): void {
  for (const stream of [process.stdout, process.stderr]) {
    const write = stream.write.bind(stream) as (...args: unknown[]) => boolean;
    stream.write = ((chunk: unknown, ...rest: unknown[]) => {
      if (typeof chunk === 'string' || chunk instanceof Uint8Array) {
        noteLeaks(`process ${stream === process.stdout ? 'stdout' : 'stderr'}`, chunk.toString());
      }
      return write(chunk, ...rest);
    }) as typeof stream.write;
  }
}

/**
 * Private keys under `dir` (PEM files named *key.pem, any depth): one base64 line of each is enough to find
 * the key if it were ever printed.
 */
export async function rememberPrivateKeys(dir: string): Promise<void> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  for (const entry of entries) {
    if (!entry.isFile() || !entry.name.endsWith('key.pem')) continue;
    const file = path.join(entry.parentPath, entry.name);
    const lines = (await readFile(file, 'utf8').catch(() => '')).split('\n');
    const body = lines.find((line) => /^[A-Za-z0-9+/]{60,}$/.test(line));
    rememberSecret(`private key ${file}`, body);
  }
}
