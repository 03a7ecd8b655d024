import { readFile, rename, writeFile } from 'node:fs/promises';
import { errorMessage, type Logger } from './log.ts';

/**
 * Whether this host fences its guests when it loses its lease. Fencing only pays when someone may restart
 * them elsewhere, which is when the host's `auto_migrate_on_host_down` flag is on: the API arms the agent
 * before it turns the flag on (and refuses the flag if the agent cannot be told), and every registration
 * brings the flag back. Kept in the agent dir, so a restarted agent knows before it hears from the API.
 */
export class FencingArm {
  private armed = false;

  constructor(
    private readonly file: string,
    private readonly log: Logger,
  ) {}

  async load(): Promise<boolean> {
    try {
      this.armed = (JSON.parse(await readFile(this.file, 'utf8')) as { armed?: unknown }).armed === true;
    } catch {
      this.armed = false;
    }
    return this.armed;
  }

  isArmed(): boolean {
    return this.armed;
  }

  async set(armed: boolean): Promise<void> {
    if (armed === this.armed) return;
    const tmp = `${this.file}.tmp`;
    await writeFile(tmp, JSON.stringify({ armed }));
    await rename(tmp, this.file);
    this.armed = armed;
    this.log(
      `self-fencing ${armed ? 'armed' : 'disarmed'} (host flag auto_migrate_on_host_down ${armed ? 'on' : 'off'})`,
    );
  }

  /** From a registration answer (the host view): follow the flag, keeping the state if it is missing. */
  async follow(hostView: unknown): Promise<void> {
    const flag = (hostView as { autoMigrateOnHostDown?: unknown } | null)?.autoMigrateOnHostDown;
    if (typeof flag !== 'boolean') return;
    await this.set(flag).catch((error) =>
      this.log(`self-fencing: could not record ${flag}: ${errorMessage(error)}`),
    );
  }
}
