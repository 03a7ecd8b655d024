import { predictFinish } from '../../../domain/convergence/predictor.ts';
import { convergingTrace, neverConvergingTrace, samplesFrom } from './recorded.ts';
const s = samplesFrom(convergingTrace);
for (let i = 1; i <= s.length; i += 4) {
  const p = predictFinish(s.slice(0, i), { downtimeLimitMs: 300 });
  console.log(s[i-1]!.atMs/1000, s[i-1]!.status.dirtySyncCount, p.verdict, p.etaSeconds, (48.5 - s[i-1]!.atMs/1000).toFixed(1), p.requiredDowntimeMs);
}
const n = samplesFrom(neverConvergingTrace);
for (let i = 30; i <= n.length; i += 6) { const p = predictFinish(n.slice(0, i)); console.log(n[i-1]!.atMs, p.verdict, p.requiredDowntimeMs, p.why); }
