import os from 'node:os';
import path from 'node:path';

/** Where setup.sh keeps what it builds or generates once per machine: ${VMMIG_CACHE:-$HOME/.cache/vmmig}. */
export function vmmigCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  return path.resolve(env.VMMIG_CACHE || path.join(os.homedir(), '.cache', 'vmmig'));
}

/** vmlinuz and initramfs.cpio.gz of the test guest, built by scripts/build-guest-image.sh. */
export function guestImageDir(env: NodeJS.ProcessEnv = process.env): string {
  return path.join(vmmigCacheDir(env), 'guest-image');
}

/** Migration TLS: the dev CA setup.sh makes, and each host's certificates in hosts/<name>/ (agent/tls-issue.ts). */
export function qemuTlsDir(env: NodeJS.ProcessEnv = process.env): string {
  return path.join(vmmigCacheDir(env), 'tls');
}
