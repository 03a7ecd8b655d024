/** The driver's sign that PostgreSQL could not be reached or did not answer in time, found in a cause chain. */
const UNAVAILABLE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENOTFOUND',
  '57014',
  '57P01',
  '57P03',
]);
const UNAVAILABLE_MESSAGES =
  /connection timeout|timeout exceeded when trying to connect|Query read timeout|Connection terminated/i;

/** What went wrong talking to PostgreSQL, or null when the error is not about reaching it. */
export function databaseUnavailableReason(err: unknown): string | null {
  for (let e: unknown = err; e instanceof Error; e = e.cause) {
    const code = (e as { code?: unknown }).code;
    if ((typeof code === 'string' && UNAVAILABLE_CODES.has(code)) || UNAVAILABLE_MESSAGES.test(e.message)) {
      return e.message;
    }
  }
  return null;
}
