import type { Options } from './measure.ts';

export const usage = `npm run bench -- alert-planner [--hosts N] [--guests N] [--rounds N] [--seed N]

  --hosts N   hosts in the synthetic fleet; default 10000
  --guests N  guests; default 200000
  --rounds N  timed planAlertMoves calls per rule (after one cold call); default 5
  --seed N    the fleet's PRNG seed; default 1 (same seed, same fleet, same plan on any machine)`;

export function parseOptions(args: string[]): Options {
  const options: Options = { hosts: 10_000, guests: 200_000, rounds: 5, seed: 1 };
  for (let i = 0; i < args.length; i++) {
    const [flag, inline] = (args[i] as string).split('=', 2) as [string, string | undefined];
    const raw = inline ?? args[++i];
    const n = Number(raw);
    if (raw === undefined || !Number.isInteger(n) || n < 0) throw new Error(`${flag} needs a whole number`);
    if (flag === '--hosts') options.hosts = Math.max(2, n);
    else if (flag === '--guests') options.guests = Math.max(1, n);
    else if (flag === '--rounds') options.rounds = Math.max(1, n);
    else if (flag === '--seed') options.seed = n;
    else throw new Error(`alert-planner: unknown argument '${flag}'\n\n${usage}`);
  }
  return options;
}
