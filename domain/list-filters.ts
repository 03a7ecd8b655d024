/**
 * The filters of the list endpoints, as the database can apply them: a filter applied to the rows a page is read
 * from (never to a page after reading it) keeps every page full and every cursor right.
 */
import type { EffectiveHostStatus } from './host-status.ts';

/**
 * A host's status as GET /v1/hosts reports it (domain/host-status.ts), as conditions on its row: maintenance is
 * stored; online and offline are the stored status but maintenance, and whether the etcd lease set holds the id.
 */
export interface HostStatusCondition {
  storedMaintenance: boolean;
  /** Only these ids (`in`) or none of them (`notIn`); absent: any id. */
  ids?: { in: string[] } | { notIn: string[] };
}

export function hostStatusCondition(
  status: EffectiveHostStatus,
  online: ReadonlySet<string>,
): HostStatusCondition {
  switch (status) {
    case 'maintenance':
      return { storedMaintenance: true };
    case 'online':
      return { storedMaintenance: false, ids: { in: [...online] } };
    case 'offline':
      return { storedMaintenance: false, ids: { notIn: [...online] } };
  }
}

/** `label=key=value`: the first `=` after the key splits it; the value may be empty or hold `=`. */
export const LABEL_FILTER = /^[^=]+=.*$/s;

export function labelFilter(raw: string): { key: string; value: string } {
  const at = raw.indexOf('=');
  if (at <= 0) throw new Error(`label: expected key=value, got '${raw}'`);
  return { key: raw.slice(0, at), value: raw.slice(at + 1) };
}

/** A query's `true`/`false`; absent stays absent. */
export const booleanFilter = (raw: 'true' | 'false' | undefined): boolean | undefined =>
  raw === undefined ? undefined : raw === 'true';
