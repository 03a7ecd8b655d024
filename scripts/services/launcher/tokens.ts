import crypto from 'node:crypto';
import fs from 'node:fs';

/**
 * The token from the environment when set; else the one in `file`, generated on first use with
 * mode 600 so that only the owner (and the CLI run by them) can read it.
 */
export function tokenFromEnvOrFile(
  value: string | undefined,
  file: string,
): { token: string; file: string | null } {
  if (value) return { token: value, file: null };
  if (!fs.existsSync(file)) {
    fs.writeFileSync(file, `${crypto.randomBytes(24).toString('base64url')}\n`, { mode: 0o600, flag: 'wx' });
  }
  fs.chmodSync(file, 0o600);
  return { token: fs.readFileSync(file, 'utf8').trim(), file };
}
