import { readFileSync } from 'node:fs';
import { planAlertMoves } from '../../domain/alert-planner.ts';
import { alertPlanDocument, parseAlertSnapshot } from '../../domain/alert-snapshot.ts';
import { stringOption, UsageError, type Command } from '../command.ts';

/** The planner offline: no server, a JSON snapshot in (docs/alert-planning.md), the plan as JSON out. */
export const alertPlan: Command = {
  name: 'plan',
  usage: 'plan --snapshot FILE.json',
  summary: 'Compute a migration-alert plan offline from a JSON snapshot and print it as JSON',
  options: { snapshot: { type: 'string' } },
  offline: true,
  async run(args) {
    const file = stringOption(args, 'snapshot');
    if (!file) throw new UsageError('missing --snapshot FILE.json');
    if (args.positionals.length > 0) throw new UsageError(`unexpected argument '${args.positionals[0]}'`);
    let document: unknown;
    try {
      document = JSON.parse(readFileSync(file === '-' ? 0 : file, 'utf8'));
    } catch (err) {
      throw new Error(`cannot read snapshot ${file}: ${(err as Error).message}`);
    }
    const parsed = parseAlertSnapshot(document);
    if (!parsed.ok) throw new Error(`invalid snapshot ${file}:\n  ${parsed.errors.join('\n  ')}`);
    console.log(JSON.stringify(alertPlanDocument(planAlertMoves(parsed.input)), null, 2));
  },
};
