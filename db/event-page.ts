import { and, desc, eq, getTableColumns, gte, sql, type SQL } from 'drizzle-orm';
import type { Db } from './client.ts';
import { events, type Event } from './schema.ts';

/** What an event list (newest first) may be narrowed to, and the page it reads. */
export interface EventPageFilter {
  type?: string;
  level?: Event['level'];
  /** Only events at or after this time. */
  since?: Date;
  /** Keyset paging: the events older than this one (its time as `pageKey` gave it, and its id). */
  before?: { at: string; id: string } | null;
  limit: number;
}

/**
 * Events about the subjects `subject` selects, newest first (time, then id), filtered and paged in SQL; each row
 * carries `pageKey`, its time at the database's precision (a JS Date would round microseconds away).
 */
export function eventPage(db: Db, subject: SQL | undefined, filter: EventPageFilter) {
  const conditions = [
    subject,
    filter.type !== undefined ? eq(events.type, filter.type) : undefined,
    filter.level !== undefined ? eq(events.level, filter.level) : undefined,
    filter.since !== undefined ? gte(events.at, filter.since) : undefined,
    filter.before
      ? sql`(${events.at}, ${events.id}) < (${filter.before.at}::timestamptz, ${filter.before.id}::bigint)`
      : undefined,
  ].filter((c) => c !== undefined);
  return db
    .select({ ...getTableColumns(events), pageKey: sql<string>`${events.at}::text` })
    .from(events)
    .where(and(...conditions))
    .orderBy(desc(events.at), desc(events.id))
    .limit(filter.limit);
}
