import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { chownToPostgres, mustDropRoot, postgresCanEnter } from './postgres-install.ts';

/** Clusters whose requested dir the postgres user cannot reach (a repo under /root) live here. */
export const UNREACHABLE_FALLBACK_ROOT = '/var/lib/vmmig/postgres';

export interface ClusterDirOptions {
  /** Where unreachable clusters go; tests pass their own. Default UNREACHABLE_FALLBACK_ROOT. */
  fallbackRoot?: string;
  /** Whether the postgres user cannot reach `parent`; tests force it. Default: asked of the kernel as postgres. */
  unreachable?: (parent: string) => boolean;
}

export interface ClusterDir {
  /** The directory the cluster really lives in. */
  path: string;
  /** Set when a fallback left by a deleted data dir was wiped before this one was made: what was removed. */
  wipedOrphan?: string;
}

/**
 * The directory the cluster really lives in. When running as root, postgres runs as the postgres user, who may
 * not be allowed to walk to `dir` (e.g. /root is 0700). Such a cluster lives under
 * /var/lib/vmmig/postgres/<name>-<hash of dir> and `dir` becomes a symlink to it, so the data is still found from
 * the requested place.
 *
 * The data dir is the whole state: deleting it must delete the database too. The fallback of a path is found
 * again from the path alone, so when `dir` is gone but its fallback is still there, that fallback belongs to a
 * deleted data dir (left to start over) and is wiped before a new cluster is made; otherwise the old hosts'
 * rows would come back with the new data dir and clash with the new agents' names.
 *
 * We do not grant the postgres user traverse rights on the ancestors instead (`setfacl -m u:postgres:x` on /root
 * and below): that changes the permissions of someone's home for good, outlives the data dir, needs the acl tools
 * and a filesystem mounted with ACLs, and lets the postgres user open whatever is world-readable under /root.
 */
export function prepareClusterDir(dir: string, options: ClusterDirOptions = {}): ClusterDir {
  const requested = path.resolve(dir);
  const parent = path.dirname(requested);
  fs.mkdirSync(parent, { recursive: true });
  const unreachable = options.unreachable ?? ((p: string) => mustDropRoot() && !postgresCanEnter(p));
  if (!unreachable(parent)) return ownedByPostgres(requested);

  const fallbackRoot = options.fallbackRoot ?? UNREACHABLE_FALLBACK_ROOT;
  fs.mkdirSync(fallbackRoot, { recursive: true, mode: 0o755 });
  // A data dir moved elsewhere keeps its link: follow it rather than start a new cluster at the new path's hash.
  const linked = symlinkTarget(requested);
  if (linked) return ownedByPostgres(linked);

  const fallback = path.join(fallbackRoot, `${path.basename(requested)}-${hashOf(requested)}`);
  let wipedOrphan: string | undefined;
  if (!pathEntryExists(requested) && pathEntryExists(fallback)) {
    assertNoPostmaster(fallback, requested);
    fs.rmSync(fallback, { recursive: true, force: true });
    wipedOrphan = fallback;
  }
  if (!pathEntryExists(requested)) fs.symlinkSync(fallback, requested);
  return { ...ownedByPostgres(fallback), wipedOrphan };
}

function ownedByPostgres(clusterDir: string): ClusterDir {
  fs.mkdirSync(clusterDir, { recursive: true });
  fs.chmodSync(clusterDir, 0o700);
  chownToPostgres(clusterDir);
  return { path: clusterDir };
}

const hashOf = (requested: string) =>
  crypto.createHash('sha256').update(requested).digest('hex').slice(0, 12);

/** The absolute target of `target` when it is a symlink, else undefined. */
function symlinkTarget(target: string): string | undefined {
  try {
    return path.resolve(path.dirname(target), fs.readlinkSync(target));
  } catch {
    return undefined;
  }
}

/** A postmaster still running on the orphan (its data dir deleted under it) must be stopped, not wiped under. */
function assertNoPostmaster(clusterDir: string, requested: string): void {
  let pid: number;
  try {
    pid = Number(fs.readFileSync(path.join(clusterDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
  } catch {
    return;
  }
  if (!Number.isInteger(pid) || pid <= 0 || !processExists(pid)) return;
  throw new Error(
    `${requested} was deleted, but a postgres (pid ${pid}) still runs on its cluster in ${clusterDir}: stop it (the stack using that data dir), then start again`,
  );
}

function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
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
