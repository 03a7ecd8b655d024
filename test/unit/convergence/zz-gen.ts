import { samplesOf, workloads, MiB } from './qemu-model.ts';
let seed = 7;
const rnd = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
function dump(name: string, w: typeof workloads.converging, maxMs: number) {
  const s = samplesOf(w, { bandwidthBytes: 30 * MiB, downtimeMs: 300 }, maxMs, 500);
  const rows = s.map((x) => {
    const st = x.status;
    const j = 1 + (rnd() - 0.5) * 0.06;
    return `  [${x.atMs}, '${st.status}', ${st.dirtySyncCount}, ${((st.remainingBytes / MiB) * (st.dirtySyncCount > 1 && st.status === 'active' ? j : 1)).toFixed(1)}, ${(st.transferredBytes / MiB).toFixed(1)}, ${(((st.dirtyPagesRate * 4096) / MiB) * j).toFixed(1)}, ${(st.mbps * j).toFixed(1)}],`;
  });
  console.log(`export const ${name}: RecordedRow[] = [\n${rows.join('\n')}\n];\n`);
}
dump('convergingTrace', workloads.slowConverging, 60_000);
dump('neverConvergingTrace', workloads.neverConverges, 40_000);
