import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { chownToPostgres, mustDropRoot, postgresCanEnter } from './postgres-install.ts';

/** Clusters whose requested dir the postgres user cannot reach (a repo under /root) live here. */
export const UNREACHABLE_FALLBACK_ROOT = '/var/lib/vmmig/postgres';

/**
 * The directory the cluster really lives in. When running as root, postgres runs as the postgres
 * user, who may not be allowed to walk to `dir` (e.g. /root is 0700). Rather than loosening the
 * permissions of someone's home, such a cluster lives under /var/lib/vmmig/postgres/<hash of dir>
 * and `dir` becomes a symlink to it, so the data is still found from the requested place.
 */
export function prepareClusterDir(dir: string): string {
  const requested = path.resolve(dir);
  const parent = path.dirname(requested);
  fs.mkdirSync(parent, { recursive: true });
  let clusterDir = requested;
  if (mustDropRoot() && !postgresCanEnter(parent)) {
    const hash = crypto.createHash('sha256').update(requested).digest('hex').slice(0, 12);
    clusterDir = path.join(UNREACHABLE_FALLBACK_ROOT, `${path.basename(requested)}-${hash}`);
    fs.mkdirSync(UNREACHABLE_FALLBACK_ROOT, { recursive: true, mode: 0o755 });
    if (!pathEntryExists(requested)) fs.symlinkSync(clusterDir, requested);
  }
  fs.mkdirSync(clusterDir, { recursive: true });
  fs.chmodSync(clusterDir, 0o700);
  chownToPostgres(clusterDir);
  return clusterDir;
}

/** lstat, not stat: a symlink whose target was removed still occupies its name. */
function pathEntryExists(target: string): boolean {
  try {
    fs.lstatSync(target);
    return true;
  } catch {
    return false;
  }
}
