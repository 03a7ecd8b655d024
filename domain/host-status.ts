export type EffectiveHostStatus = 'online' | 'offline' | 'maintenance';

/** Maintenance is an operator decision and wins; otherwise the etcd lease alone says whether a host is up. */
export function effectiveHostStatus(
  storedStatus: 'online' | 'offline' | 'maintenance',
  hasLiveLease: boolean,
): EffectiveHostStatus {
  if (storedStatus === 'maintenance') return 'maintenance';
  return hasLiveLease ? 'online' : 'offline';
}
