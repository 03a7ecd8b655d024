import { asc, eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it, inject } from 'vitest';
import { recordEventsInOrder, type NewEvent } from '../../db/inventory.ts';
import { events } from '../../db/schema.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';

describe("recordEventsInOrder: one statement for a batch of a rule's events", () => {
  let database: TestDatabase;
  beforeAll(async () => {
    database = await createTestDatabase(inject('postgresAdminUrl'));
  });
  afterAll(async () => {
    await database?.drop();
  });

  const event = (n: number, dedupeKey?: string): NewEvent => ({
    subjectKind: 'rule',
    subjectId: 'r1',
    type: 'migrating',
    message: `move ${n}`,
    dedupeKey,
  });
  const messages = async () =>
    (
      await database.db
        .select({ message: events.message })
        .from(events)
        .where(eq(events.subjectId, 'r1'))
        .orderBy(asc(events.id))
    ).map((row) => row.message);

  it('keeps the order given, and a retry (or a repeated key) records nothing twice', async () => {
    const batch = Array.from({ length: 50 }, (_, i) => event(i, `cycle-1:migrating:g${i}`));
    await recordEventsInOrder(database.db, batch);
    expect(await messages()).toEqual(batch.map((e) => e.message));

    await recordEventsInOrder(database.db, [...batch, event(50, 'cycle-1:migrating:g50'), event(51)]);
    expect(await messages()).toEqual([...batch.map((e) => e.message), 'move 50', 'move 51']);

    await recordEventsInOrder(database.db, [event(52, 'k'), event(53, 'k')]);
    expect((await messages()).slice(-1)).toEqual(['move 52']);
    await recordEventsInOrder(database.db, []);
    expect(await messages()).toHaveLength(53);
  });
});
