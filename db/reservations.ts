import { eq } from 'drizzle-orm';
import type { Db } from './client.ts';
import { reservations, type Reservation } from './schema.ts';

/** The capacity a migration holds, if any: a retried reservation step finds its own earlier work here. */
export async function reservationOf(db: Db, migrationId: string): Promise<Reservation | undefined> {
  const [row] = await db.select().from(reservations).where(eq(reservations.migrationId, migrationId));
  return row;
}
