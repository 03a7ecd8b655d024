/** How a benchmark flag is read: a whole number of at least `min`, a switch, or a text. */
export type FlagSpec<T> =
  | { key: { [K in keyof T]: T[K] extends number ? K : never }[keyof T]; min: number }
  | { key: { [K in keyof T]: T[K] extends boolean ? K : never }[keyof T]; switch: true }
  | { key: { [K in keyof T]: T[K] extends string | null ? K : never }[keyof T]; text: true };

/**
 * A benchmark's arguments (`--flag value` or `--flag=value`) over its defaults; an unknown flag or a bad value
 * throws, naming the flag (and with the usage for an unknown one).
 */
export function parseFlags<T extends object>(
  benchmark: { name: string; usage: string },
  args: string[],
  defaults: T,
  flags: Record<string, FlagSpec<T>>,
): T {
  const options: T = { ...defaults };
  const set = (key: PropertyKey, value: unknown) => ((options as Record<PropertyKey, unknown>)[key] = value);
  for (let i = 0; i < args.length; i++) {
    const [flag, inline] = (args[i] as string).split('=', 2) as [string, string | undefined];
    const spec = flags[flag];
    if (spec === undefined)
      throw new Error(`${benchmark.name}: unknown argument '${args[i]}'\n\n${benchmark.usage}`);
    if ('switch' in spec) {
      set(spec.key, true);
      continue;
    }
    const raw = inline ?? args[++i];
    if ('text' in spec) {
      if (!raw) throw new Error(`${flag} needs a value`);
      set(spec.key, raw);
      continue;
    }
    const n = Number(raw);
    if (raw === undefined || !Number.isInteger(n) || n < spec.min)
      throw new Error(`${flag} needs a whole number >= ${spec.min}`);
    set(spec.key, n);
  }
  return options;
}
