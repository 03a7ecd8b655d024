/** Guest labels whose key starts with this are affinity labels: guests carrying the same ones move together. */
export const AFFINITY_LABEL_PREFIX = 'affinity.';

export function affinityLabels(labels: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(labels).filter(([key]) => key.startsWith(AFFINITY_LABEL_PREFIX)));
}

/** Another guest belongs with this one when it carries every one of this guest's affinity labels, same values. */
export function sharesAffinity(
  guestLabels: Record<string, string>,
  otherLabels: Record<string, string>,
): boolean {
  const wanted = Object.entries(affinityLabels(guestLabels));
  return wanted.length > 0 && wanted.every(([key, value]) => otherLabels[key] === value);
}

export function affinityGroupOf<T extends { id: string; labels: Record<string, string> }>(
  guest: T,
  all: T[],
): T[] {
  return all.filter((other) => other.id !== guest.id && sharesAffinity(guest.labels, other.labels));
}
