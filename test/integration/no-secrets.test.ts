import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMiniStack, type MiniStack } from '../helpers/mini-stack.ts';
import { createRunningServer, waitForPhase } from '../helpers/migrations.ts';
import { rememberedSecretCount, secretsIn } from '../helpers/secret-ledger.ts';
import { assertStackHoldsNoSecrets } from '../helpers/secret-scan.ts';

/**
 * No secret in a log line, event, error or API response. Every integration file's stacks are scanned when they
 * stop (test/helpers/mini-stack.ts, secret-scan.ts) and its own output at its end (test/secret-scan.setup.ts);
 * this file walks the paths most likely to leak one (tokens made and refused, an enrolled host, a migration, a
 * refused agent call) and proves the scan would catch a leak.
 */
describe('no secret leaves in an answer, a log, an event or a history', () => {
  let stack: MiniStack;
  const scan = () =>
    assertStackHoldsNoSecrets({
      databaseUrl: stack.db.url,
      temporal: stack.temporal,
      taskQueue: stack.taskQueue,
      agentLogs: stack.agentLogs,
    });

  beforeAll(async () => {
    stack = await startMiniStack({ hosts: [{ name: 'ns1' }, { name: 'ns2', enrol: true }] });
  });
  afterAll(async () => {
    await stack?.stop();
  });

  it('keeps every token, credential and key it made out of answers, logs, rows and histories', async () => {
    const operator = await stack.api<{ token: string; id: string }>('POST', '/v1/tokens', {
      name: 'ns-operator',
      role: 'operator',
    });
    expect(operator.status).toBe(201);
    const enrolment = await stack.api<{ token: string }>('POST', '/v1/enrolment-tokens', { name: 'spare' });
    expect(enrolment.status).toBe(201);

    // Refusals must not echo what was sent.
    expect((await stack.api('GET', '/v1/servers', undefined, `${operator.body.token}x`)).status).toBe(401);
    expect((await stack.api('GET', '/v1/servers', undefined, enrolment.body.token)).status).toBe(401);
    expect(
      (await stack.api('POST', '/v1/tokens', { name: 'x', role: 'admin' }, operator.body.token)).status,
    ).toBe(403);
    const agent = stack.agents.get('ns1')!;
    const refused = await fetch(`${agent.url}/v1/guests`, {
      headers: { authorization: `Bearer ${stack.apiToken}` },
    });
    expect(refused.status).toBe(401);
    expect(secretsIn(await refused.text())).toEqual([]);

    // A migration between an enrolled host and a host handed its credential, asked by the operator.
    const guest = await createRunningServer(stack, { name: 'ns-vm', host: 'ns1' });
    const started = await stack.api<{ id: string }>(
      'POST',
      `/v1/servers/${guest.id}/live-migrate`,
      { prefer_host: 'ns2' },
      operator.body.token,
    );
    expect(started.status, JSON.stringify(started.body)).toBe(202);
    expect((await waitForPhase(stack, started.body.id, ['completed', 'failed'])).phase).toBe('completed');
    expect((await stack.api('DELETE', `/v1/tokens/${operator.body.id}`)).status).toBe(200);

    expect(rememberedSecretCount()).toBeGreaterThanOrEqual(6);
    await scan();
  });

  it('would catch a secret written into an event (the scan can fail)', async () => {
    await stack.db.db.execute(
      sql`insert into events (subject_kind, subject_id, type, message) values ('guest', 'x', 'test_leak', ${`leaked ${stack.apiToken}`})`,
    );
    await expect(scan()).rejects.toThrow(/secret leaked: the bootstrap API token in table events/);
    await stack.db.db.execute(sql`delete from events where type = 'test_leak'`);
    await scan();
  });
});
