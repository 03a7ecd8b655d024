/**
 * Reading an environment with every problem kept, not the first one thrown: a process checks all it needs
 * at start and an operator fixes the whole file in one go. Each problem names its variable first.
 */
export type Env = Record<string, string | undefined>;

/** All the problems of one environment, one per line, each naming its variable. */
export class ConfigError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(problems.join('\n'));
    this.name = 'ConfigError';
  }
}

/** A file a variable names: read at start-up, so a missing one stops the process naming the variable. */
export interface NamedFile {
  variable: string;
  path: string;
}

const TRUE_WORDS = ['1', 'true', 'yes', 'on'];
const FALSE_WORDS = ['0', 'false', 'no', 'off'];

export class EnvReader {
  readonly problems: string[] = [];
  readonly files: NamedFile[] = [];

  constructor(readonly env: Env) {}

  problem(message: string): void {
    this.problems.push(message);
  }

  /** The value as written; undefined when unset or blank (an empty line in an EnvironmentFile is "unset"). */
  optional(name: string): string | undefined {
    const raw = this.env[name];
    return raw === undefined || raw.trim() === '' ? undefined : raw;
  }

  isSet(name: string): boolean {
    return this.optional(name) !== undefined;
  }

  string(name: string, fallback: string): string {
    return this.optional(name) ?? fallback;
  }

  required(name: string, what?: string): string {
    const value = this.optional(name);
    if (value === undefined) this.problem(`${name} is required${what ? ` (${what})` : ''}`);
    return value ?? '';
  }

  int(name: string, fallback: number, min = 0, max = Number.MAX_SAFE_INTEGER): number {
    return this.optionalInt(name, min, max) ?? fallback;
  }

  optionalInt(name: string, min = 0, max = Number.MAX_SAFE_INTEGER): number | undefined {
    const raw = this.optional(name)?.trim();
    if (raw === undefined) return undefined;
    const value = Number(raw);
    if (!/^-?\d+$/.test(raw) || !Number.isSafeInteger(value) || value < min || value > max) {
      const range = max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `from ${min} to ${max}`;
      this.problem(`${name} must be an integer ${range}, got '${raw}'`);
      return undefined;
    }
    return value;
  }

  bool(name: string, fallback: boolean): boolean {
    const raw = this.optional(name)?.trim().toLowerCase();
    if (raw === undefined) return fallback;
    if (TRUE_WORDS.includes(raw)) return true;
    if (FALSE_WORDS.includes(raw)) return false;
    this.problem(`${name} must be true or false, got '${this.env[name]}'`);
    return fallback;
  }

  /** true, false, or undefined when unset (a flag whose absence means "decide from the other settings"). */
  optionalBool(name: string): boolean | undefined {
    if (!this.isSet(name)) return undefined;
    return this.bool(name, false);
  }

  oneOf<T extends string>(name: string, values: readonly T[], fallback: T): T {
    const raw = this.optional(name)?.trim();
    if (raw === undefined) return fallback;
    if ((values as readonly string[]).includes(raw)) return raw as T;
    this.problem(`${name} must be one of ${values.join(', ')}, got '${raw}'`);
    return fallback;
  }

  list(name: string, fallback: readonly string[]): string[] {
    const raw = this.optional(name);
    if (raw === undefined) return [...fallback];
    return raw
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s.length > 0);
  }

  /** An absolute URL with one of these protocols ('http:'…); the fallback when unset. */
  url(name: string, fallback: string, protocols: readonly string[]): string {
    const raw = this.optional(name)?.trim();
    if (raw === undefined) return fallback;
    const problem = urlProblem(raw, protocols);
    if (problem !== null) this.problem(`${name}: ${problem}`);
    return raw;
  }

  /** A file path, remembered so that start-up checks it can be read; null when unset. */
  file(name: string): string | null {
    const path = this.optional(name)?.trim();
    if (path === undefined) return null;
    this.files.push({ variable: name, path });
    return path;
  }

  /** Both set or neither: half a client pair or half a login is a mistake, not a choice. */
  pair(a: string, b: string, what: string): void {
    if (this.isSet(a) === this.isSet(b)) return;
    const [set, unset] = this.isSet(a) ? [a, b] : [b, a];
    this.problem(`${a} and ${b} go together (${what}): ${set} is set without ${unset}`);
  }

  /** The value, or throws every problem at once. */
  result<T>(value: T): T {
    if (this.problems.length > 0) throw new ConfigError(this.problems);
    return value;
  }
}

/** Why `raw` is not a URL with one of these protocols, or null. */
export function urlProblem(raw: string, protocols: readonly string[]): string | null {
  const kinds = protocols.map((p) => p.replace(/:$/, ''));
  const kind =
    kinds.length === 2 && kinds[0] === 'http' && kinds[1] === 'https' ? 'http(s)' : kinds.join(' or ');
  // A password in the URL stays out of the message.
  const shown = raw.replace(/\/\/[^/@]*@/, '//***@');
  const notOne = `'${shown}' is not ${/^[aeiouh]/.test(kind) ? 'an' : 'a'} ${kind} URL`;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return notOne;
  }
  return protocols.includes(url.protocol) && url.hostname !== '' ? null : notOne;
}
