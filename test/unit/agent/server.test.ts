import { describe, expect, it } from 'vitest';
import type { AgentError, GuestState } from '../../../domain/agent-contract.ts';
import { defaultSimProfile, SimDriver } from '../../../agent/drivers/sim.ts';
import { createAgentApp } from '../../../agent/server.ts';
import { testSpec } from '../../agent/specs.ts';

function app(ready = true) {
  const driver = new SimDriver({
    identity: {
      hostId: '00000000-0000-4000-8000-000000000000',
      name: 'unit',
      agentUrl: 'http://127.0.0.1:1',
      address: '127.0.0.1',
      migrationAddress: null,
      networks: ['default'],
      sharedStoragePath: '/tmp/shared',
    },
    profile: defaultSimProfile,
    log: () => {},
    peerCredential: 'secret',
  });
  return createAgentApp({ driver, token: 'secret', log: () => {}, isReady: () => ready });
}

const auth = { authorization: 'Bearer secret', 'content-type': 'application/json' };

describe('agent HTTP layer (app.request, no socket)', () => {
  it('serves the contract in process', async () => {
    const spec = testSpec();
    const put = await app().request(`/v1/guests/${spec.id}`, {
      method: 'PUT',
      headers: auth,
      body: JSON.stringify(spec),
    });
    expect(put.status).toBe(200);
    expect(((await put.json()) as GuestState).status).toBe('defined');
  });

  it('answers with JSON errors, never a 500, for bad input', async () => {
    const a = app();
    const cases: [string, RequestInit, number, string][] = [
      ['/v1/facts', {}, 401, 'unauthorized'],
      ['/v1/facts', { headers: { authorization: 'Basic secret' } }, 401, 'unauthorized'],
      ['/v1/nowhere', { headers: auth }, 404, 'route_not_found'],
      ['/v1/guests/g-1', { method: 'PUT', headers: auth, body: '{' }, 400, 'invalid_json'],
      ['/v1/guests/g-1', { method: 'PUT', headers: auth }, 400, 'invalid_request'],
      ['/v1/guests/g-1', { method: 'PUT', headers: auth, body: '[]' }, 400, 'invalid_request'],
      [
        '/v1/guests/g-1',
        { method: 'PUT', headers: auth, body: JSON.stringify(testSpec({ id: 'g-2' })) },
        400,
        'id_mismatch',
      ],
      [
        '/v1/guests/g-1/migration',
        { method: 'POST', headers: auth, body: '{"migrationId":"m","uri":"x","downtimeLimitMs":-1}' },
        400,
        'invalid_request',
      ],
      ['/v1/guests/g-1/migration?waitMs=soon', { headers: auth }, 400, 'invalid_request'],
      ['/v1/guests/g-1/migration?waitMs=10&unless=running', { headers: auth }, 400, 'invalid_request'],
      ['/v1/guests/g-1/migration/cancel', { method: 'POST', headers: auth }, 404, 'guest_not_found'],
      ['/v1/guests/g-1', { method: 'DELETE', headers: auth }, 200, ''],
    ];
    for (const [path, init, status, code] of cases) {
      const response = await a.request(path, init);
      expect(response.status, `${init.method ?? 'GET'} ${path}`).toBe(status);
      if (code !== '') expect(((await response.json()) as AgentError).error.code).toBe(code);
    }
  });

  it('names the field and the expectation in a 400', async () => {
    const response = await app().request('/v1/guests/g-1/migration', {
      method: 'POST',
      headers: auth,
      body: JSON.stringify({ migrationId: 'm', uri: 'x', maxBandwidthBytes: 'fast' }),
    });
    const body = (await response.json()) as AgentError;
    expect(body.error.field).toBe('maxBandwidthBytes');
    expect(body.error.message).toBe('maxBandwidthBytes: Invalid input: expected number, received string');
  });

  it('reads an optional resume body and names the bad field in a 400', async () => {
    const a = app();
    const spec = testSpec();
    await a.request(`/v1/guests/${spec.id}`, { method: 'PUT', headers: auth, body: JSON.stringify(spec) });
    for (const [body, field] of [
      [{ expectMigrationStatus: 'done' }, 'expectMigrationStatus'],
      [{ migrationId: '' }, 'migrationId'],
      [{ migrationId: 7 }, 'migrationId'],
    ] as const) {
      const response = await a.request(`/v1/guests/${spec.id}/resume`, {
        method: 'POST',
        headers: auth,
        body: JSON.stringify(body),
      });
      expect(response.status, JSON.stringify(body)).toBe(400);
      const error = ((await response.json()) as AgentError).error;
      expect([error.code, error.field]).toEqual(['invalid_request', field]);
      expect(error.message).toMatch(new RegExp(`^${field}: `));
    }
    const json = await a.request(`/v1/guests/${spec.id}/resume`, {
      method: 'POST',
      headers: auth,
      body: '{',
    });
    expect(json.status).toBe(400);
    // No body, or an empty object, is a plain resume: a defined guest is not paused.
    for (const body of [undefined, '{}']) {
      const response = await a.request(`/v1/guests/${spec.id}/resume`, {
        method: 'POST',
        headers: auth,
        body,
      });
      expect(response.status).toBe(409);
      expect(((await response.json()) as AgentError).error.code).toBe('guest_not_paused');
    }
  });

  it('says 503 while the driver is still starting, and reports health without a token', async () => {
    const starting = app(false);
    expect((await starting.request('/v1/facts', { headers: auth })).status).toBe(503);
    expect(await (await starting.request('/healthz')).json()).toEqual({ ok: true, ready: false });
  });
});
