/** Leading numeric parts of a version string: "7.2.22 (Debian 1:7.2+dfsg-7)" → [7, 2, 22]; "6.1.0-31-cloud-amd64" → [6, 1, 0, 31]. */
export function numericParts(version: string): number[] {
  const match = /\d+(?:[.-]\d+)*/.exec(version);
  if (!match) return [];
  return match[0].split(/[.-]/).map(Number);
}

/** Negative when a < b, zero when equal on the parts both have, positive when a > b. */
export function compareVersions(a: string, b: string, depth = Infinity): number {
  const pa = numericParts(a).slice(0, depth);
  const pb = numericParts(b).slice(0, depth);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const diff = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (diff !== 0) return diff;
  }
  return 0;
}
