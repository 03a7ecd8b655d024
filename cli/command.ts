import type { ParseArgsConfig } from 'node:util';
import type { ApiConnection } from './connection.ts';

export type OptionSpec = NonNullable<ParseArgsConfig['options']>;

export interface ParsedArgs {
  values: Record<string, string | boolean | (string | boolean)[] | undefined>;
  positionals: string[];
}

export interface Command {
  name: string;
  usage: string;
  summary: string;
  options: OptionSpec;
  /** Runs without a server: no API address or token is looked up. */
  offline?: boolean;
  run(args: ParsedArgs, conn: ApiConnection): Promise<void>;
}

export class UsageError extends Error {}

export function onePositional(args: ParsedArgs, what: string): string {
  const [first, ...rest] = args.positionals;
  if (!first) throw new UsageError(`missing <${what}>`);
  if (rest.length > 0) throw new UsageError(`unexpected argument '${rest[0]}'`);
  return first;
}

export function intOption(args: ParsedArgs, name: string): number | undefined {
  const raw = args.values[name];
  if (typeof raw !== 'string') return undefined;
  const value = Number(raw);
  if (!Number.isInteger(value)) throw new UsageError(`--${name} expects an integer, got '${raw}'`);
  return value;
}

export function stringOption(args: ParsedArgs, name: string): string | undefined {
  const raw = args.values[name];
  return typeof raw === 'string' ? raw : undefined;
}
