import { runMigration, workloads, baseContext } from './qemu-model.ts';
import {
  kubevirtDefault,
  novaDefault,
  cloudpodsDefault,
  predictiveDefault,
} from '../../../domain/convergence/policies.ts';
import { ovirtSchedules } from '../../../domain/convergence/schedule.ts';
const show = (w: keyof typeof workloads, p: Parameters<typeof runMigration>[0]['policy'], perm = {}) => {
  const r = runMigration({ workload: workloads[w], policy: p, context: baseContext(perm), maxMs: 2000_000 });
  for (const a of r.actions.slice(0, 3)) console.log(`[${p?.kind}] ${a.action.type}: ${a.action.reason}`);
};
show('neverConverges', kubevirtDefault);
show('neverConverges', kubevirtDefault, { pauseAllowed: true });
show('neverConverges', novaDefault);
show('neverConverges', cloudpodsDefault, { pauseAllowed: true });
show('neverConverges', predictiveDefault);
show('neverConverges', predictiveDefault, { autoConvergeAllowed: true });
show('smallHotSet', predictiveDefault);
show('neverConverges', ovirtSchedules['post-copy']);
show('neverConverges', cloudpodsDefault, { autoConvergeAllowed: true });
