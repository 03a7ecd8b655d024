/** CREATE DATABASE is idempotent in InfluxDB 1.x: running it at every start is safe. */
export async function ensureInfluxDatabase(url: string, database: string): Promise<void> {
  const query = new URLSearchParams({ q: `CREATE DATABASE "${database.replaceAll('"', '\\"')}"` });
  const response = await fetch(`${url}/query`, {
    method: 'POST',
    body: query,
    signal: AbortSignal.timeout(10_000),
  });
  const text = await response.text();
  if (!response.ok || text.includes('"error"')) {
    throw new Error(`InfluxDB at ${url}: CREATE DATABASE ${database} failed: ${response.status} ${text}`);
  }
}
