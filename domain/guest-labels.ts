/**
 * A change to a guest's labels (PATCH /v1/servers/:id): a key set to a string takes that value, a key set to null
 * goes, every other key stays. Policies (migration-policy.ts) and affinity (affinity.ts) select on the result
 * from the guest's next migration on.
 */
export type LabelPatch = Record<string, string | null>;

export function mergeLabels(current: Record<string, string>, patch: LabelPatch): Record<string, string> {
  const merged = { ...current };
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete merged[key];
    else merged[key] = value;
  }
  return merged;
}
