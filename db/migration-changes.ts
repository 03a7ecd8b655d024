import { readFileSync } from 'node:fs';
import pg from 'pg';
import { databaseSettingsFromUrl, postgresSsl, type DatabaseSettings } from '../domain/config.ts';

/**
 * The channel the database notifies when a migration's phase changes or its pre-check verdict is recorded (the
 * triggers of db/migrations/0013_migration_change_notify.sql); the payload is the migration's id.
 */
export const MIGRATION_CHANGES_CHANNEL = 'migration_changes';

const CONNECT_TIMEOUT_MS = 5_000;
/** After a lost connection, the next attempt to listen again. */
const RELISTEN_DELAY_MS = 1_000;

/** What ended a wait: the migration's record changed, or the time ran out. */
export type ChangeWait = 'changed' | 'timeout';

/**
 * One connection LISTENing on the migration changes channel, waking whoever waits for a given migration. A
 * notification may be lost while the connection is down, so every wait also ends at its timeout: waiters read
 * the record again then, and `listening` says whether to wait long (notified) or poll.
 */
export class MigrationChanges {
  private client: pg.Client | null = null;
  private connecting = false;
  private closed = false;
  private retry: NodeJS.Timeout | null = null;
  private readonly waiters = new Map<string, Set<() => void>>();

  constructor(private readonly settings: DatabaseSettings) {}

  static fromUrl(url: string): MigrationChanges {
    return new MigrationChanges(databaseSettingsFromUrl(url));
  }

  /** Whether notifications arrive now (a wait still times out, in case one was missed). */
  get listening(): boolean {
    return this.client !== null;
  }

  /** Connects and listens; a failure is retried in the background (waits poll meanwhile). */
  async start(): Promise<void> {
    if (this.closed || this.client || this.connecting) return;
    this.connecting = true;
    const client = new pg.Client({
      connectionString: this.settings.url,
      ssl: postgresSsl(this.settings, readFileSync),
      // A server that does not answer must not hold up the API's start: it polls meanwhile.
      connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
      query_timeout: CONNECT_TIMEOUT_MS,
      // A connection that died without a word (a partition) is noticed, and listened again.
      keepAlive: true,
    });
    const lost = () => {
      if (this.client === client) this.client = null;
      client.removeAllListeners('notification');
      void client.end().catch(() => undefined);
      this.scheduleRelisten();
    };
    client.on('error', lost);
    client.on('end', lost);
    client.on('notification', (message) => {
      if (message.channel === MIGRATION_CHANGES_CHANNEL && message.payload) this.wake(message.payload);
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${MIGRATION_CHANGES_CHANNEL}`);
      if (this.closed) return await endQuietly(client);
      this.client = client;
    } catch {
      lost();
    } finally {
      this.connecting = false;
    }
  }

  /**
   * Resolves when the migration's record changes or after `timeoutMs`. Register before reading the record, then
   * await: a change between the read and the wait is not missed.
   */
  next(migrationId: string, timeoutMs: number): { changed: Promise<ChangeWait>; cancel: () => void } {
    let settle: (how: ChangeWait) => void = () => undefined;
    const changed = new Promise<ChangeWait>((resolve) => {
      settle = resolve;
    });
    const set = this.waiters.get(migrationId) ?? new Set<() => void>();
    this.waiters.set(migrationId, set);
    const done = (how: ChangeWait) => {
      clearTimeout(timer);
      set.delete(onChange);
      if (set.size === 0 && this.waiters.get(migrationId) === set) this.waiters.delete(migrationId);
      settle(how);
    };
    const onChange = () => done('changed');
    const timer = setTimeout(() => done('timeout'), timeoutMs);
    set.add(onChange);
    return { changed, cancel: () => done('timeout') };
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.retry) clearTimeout(this.retry);
    const client = this.client;
    this.client = null;
    if (client) await endQuietly(client);
  }

  private wake(migrationId: string): void {
    for (const waiter of [...(this.waiters.get(migrationId) ?? [])]) waiter();
  }

  private scheduleRelisten(): void {
    if (this.closed || this.retry) return;
    this.retry = setTimeout(() => {
      this.retry = null;
      void this.start();
    }, RELISTEN_DELAY_MS);
  }
}

/** Closes a connection we no longer listen on: its late errors and its end are nobody's concern. */
async function endQuietly(client: pg.Client): Promise<void> {
  client.removeAllListeners();
  client.on('error', () => undefined);
  await client.end().catch(() => undefined);
}
