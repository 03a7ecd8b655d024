import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { z } from 'zod';
import { createApp } from '../../api/app.ts';
import type { ApiDeps } from '../../api/deps.ts';
import { startMiniStack, type MiniStack } from '../helpers/mini-stack.ts';
import { waitForMigrationEnd } from '../helpers/migrations.ts';
import { waitFor } from '../helpers/wait.ts';

/** An operation of the document: its responses by status, each with its schema and whether it sets Location. */
interface DocumentedResponse {
  schema?: z.ZodType;
  location: boolean;
}

interface OpenApiDocument {
  openapi: string;
  paths: Record<string, Record<string, { responses: Record<string, unknown> }>>;
}

/** `/v1/servers/:id` → `/v1/servers/{id}`, as the document writes a path. */
const documentPath = (path: string) => path.replace(/:(\w+)/g, '{$1}');

/**
 * The app as it is built (no request is served: the deps are never touched), for its routes and for the zod
 * schemas the document was generated from.
 */
const app = createApp({} as ApiDeps);

function documentedResponses(): Map<string, Map<number, DocumentedResponse>> {
  const byOperation = new Map<string, Map<number, DocumentedResponse>>();
  for (const def of app.openAPIRegistry.definitions) {
    if (def.type !== 'route') continue;
    const responses = new Map<number, DocumentedResponse>();
    for (const [status, response] of Object.entries(def.route.responses)) {
      const config = response as {
        content?: Record<string, { schema?: z.ZodType }>;
        headers?: { shape?: Record<string, unknown> };
      };
      responses.set(Number(status), {
        schema: config.content?.['application/json']?.schema,
        location: Boolean(config.headers?.shape?.Location),
      });
    }
    byOperation.set(`${def.route.method.toUpperCase()} ${def.route.path}`, responses);
  }
  return byOperation;
}

describe('the OpenAPI document', () => {
  let stack: MiniStack;
  let document: OpenApiDocument;
  const operations = documentedResponses();

  /** A request to the running API, with the answer's status, JSON body and Location header. */
  async function call(method: string, path: string, body?: unknown, token: string | null = stack.apiToken) {
    const res = await fetch(`${stack.apiUrl}${path}`, {
      method,
      headers: {
        ...(token !== null ? { authorization: `Bearer ${token}` } : {}),
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      },
      body: body !== undefined ? JSON.stringify(body) : undefined,
    });
    const text = await res.text();
    const type = res.headers.get('content-type') ?? '';
    return {
      status: res.status,
      body: (type.includes('json') && text ? JSON.parse(text) : text) as Record<string, unknown> & {
        items?: Record<string, unknown>[];
      },
      location: res.headers.get('location'),
    };
  }

  /** The answer matches what the document says of `operation` for its status: schema, and Location. */
  function expectDocumented(operation: string, answer: Awaited<ReturnType<typeof call>>) {
    const [method = '', path = ''] = operation.split(' ');
    const responses = operations.get(`${method} ${documentPath(path)}`);
    expect(responses, `${operation} is not in the document`).toBeDefined();
    const documented = responses?.get(answer.status);
    expect(
      documented,
      `${operation} answered ${answer.status}, which the document does not list`,
    ).toBeDefined();
    expect(
      document.paths[documentPath(path)]?.[method.toLowerCase()]?.responses[String(answer.status)],
    ).toBeDefined();
    if (documented?.schema) {
      const parsed = documented.schema.safeParse(answer.body);
      expect(parsed.success, `${operation} ${answer.status}: ${parsed.error?.message ?? ''}`).toBe(true);
    }
    if (documented?.location) expect(answer.location, `${operation}: Location`).toMatch(/^\/v1\//);
    return answer;
  }

  const checked = async (operation: string, path: string, body?: unknown, token?: string | null) =>
    expectDocumented(operation, await call(operation.split(' ')[0] ?? 'GET', path, body, token));

  beforeAll(async () => {
    stack = await startMiniStack({ hosts: [{ name: 'oa-src' }, { name: 'oa-dst' }] });
    const res = await fetch(`${stack.apiUrl}/openapi.json`);
    expect(res.status).toBe(200);
    document = (await res.json()) as OpenApiDocument;
  });
  afterAll(async () => stack?.stop());

  it('is OpenAPI 3.1 and has every route the app serves, with its method, and nothing it does not serve', () => {
    expect(document.openapi).toBe('3.1.0');
    const served = [
      ...new Set(app.routes.filter((r) => r.method !== 'ALL').map((r) => `${r.method} ${r.path}`)),
    ];
    expect(served.length).toBeGreaterThan(35);
    const missing = served.filter((route) => {
      const [method = '', path = ''] = route.split(' ');
      return document.paths[documentPath(path)]?.[method.toLowerCase()] === undefined;
    });
    expect(missing, 'routes without a document entry').toEqual([]);
    const documented = Object.entries(document.paths).flatMap(([path, methods]) =>
      Object.keys(methods).map((method) => `${method.toUpperCase()} ${path}`),
    );
    const servedOperations = new Set(served.map(documentPath));
    const unserved = documented.filter((op) => !servedOperations.has(op));
    expect(unserved, 'document entries no route serves').toEqual([]);
  });

  it('serves a browsable reference page with its assets, without internet', async () => {
    const page = await call('GET', '/docs', undefined, null);
    expect(page.status).toBe(200);
    expect(String(page.body)).toContain('/openapi.json');
    for (const asset of ['swagger-ui-bundle.js', 'swagger-ui.css']) {
      const res = await fetch(`${stack.apiUrl}/docs/assets/${asset}`);
      expect(res.status, asset).toBe(200);
      expect((await res.arrayBuffer()).byteLength, asset).toBeGreaterThan(1000);
    }
  });

  it('describes what real calls answer: creates, reads, lists, patches, migrations and errors', async () => {
    await checked('GET /healthz', '/healthz', undefined, null);
    await checked('GET /v1/hosts', '/v1/hosts');
    await checked('GET /v1/hosts/:id', '/v1/hosts/oa-src');
    await checked('GET /v1/hosts/:id/events', '/v1/hosts/oa-src/events');
    await checked('GET /v1/hosts/:id', '/v1/hosts/nope');
    await checked('GET /v1/servers', '/v1/servers', undefined, null);
    await checked('POST /v1/servers', '/v1/servers', { name: 'oa-1', host: 'oa-src', vcpus: 0 });

    const created = await checked('POST /v1/servers', '/v1/servers', {
      name: 'oa-1',
      host: 'oa-src',
      memoryMb: 512,
      labels: { app: 'web' },
      networks: [{ name: 'default', mac: '52:54:00:0a:00:01' }],
      disks: [{ id: 'disk0', sizeMb: 64, storage: 'shared', cache: 'none' }],
    });
    expect(created.status).toBe(202);
    expect(created.location).toBe(`/v1/servers/${String(created.body.id)}`);
    await waitFor('oa-1 running', async () => {
      const res = await call('GET', created.location ?? '');
      return res.body.status === 'running' ? res : null;
    });
    await checked('GET /v1/servers/:id', '/v1/servers/oa-1');
    const listed = await checked('GET /v1/servers', '/v1/servers');
    expect(listed.body.items?.map((s) => s.name)).toEqual(['oa-1']);

    const patched = await checked('PATCH /v1/servers/:id', '/v1/servers/oa-1', { labels: { tier: 'gold' } });
    expect(patched.body.labels).toEqual({ app: 'web', tier: 'gold' });
    await checked('PATCH /v1/servers/:id', '/v1/servers/nope', { labels: { tier: 'gold' } });
    await checked('GET /v1/servers/:id/migration-policy', '/v1/servers/oa-1/migration-policy');

    const started = await checked('POST /v1/servers/:id/live-migrate', '/v1/servers/oa-1/live-migrate', {
      prefer_host: 'oa-dst',
    });
    expect(started.status).toBe(202);
    expect(started.body).toMatchObject({
      kind: 'live',
      guest: { name: 'oa-1' },
      destination: { name: 'oa-dst' },
    });
    expect(started.location).toBe(`/v1/migrations/${String(started.body.id)}`);
    await checked('GET /v1/migrations/:id', started.location ?? '');
    expect((await waitForMigrationEnd(stack, String(started.body.id))).phase).toBe('completed');
    await checked('GET /v1/migrations/:id', started.location ?? '');
    await checked('GET /v1/migrations', '/v1/migrations');
    await checked('POST /v1/migrations/:id/cancel', `${started.location ?? ''}/cancel`);
    await checked('POST /v1/servers/:id/live-migrate', '/v1/servers/nope/live-migrate', {});

    const stopped = await checked('POST /v1/servers/:id/stop', '/v1/servers/oa-1/stop');
    expect(stopped.status).toBe(202);
    await waitFor('oa-1 ready', async () => {
      const res = await call('GET', '/v1/servers/oa-1');
      return res.body.status === 'ready' ? res : null;
    });
    expect((await checked('POST /v1/servers/:id/stop', '/v1/servers/oa-1/stop')).status).toBe(200);
  });

  it('describes the settings, token and enrolment answers', async () => {
    await checked('GET /v1/migration-config', '/v1/migration-config');
    const policy = await checked('POST /v1/migration-policies', '/v1/migration-policies', {
      name: 'oa-gold',
      selectors: { guestLabels: { tier: 'gold' } },
      convergence: 'minimal-downtime',
    });
    expect(policy.status).toBe(201);
    await checked('GET /v1/migration-policies', '/v1/migration-policies');
    await checked('GET /v1/migration-policies/:name', policy.location ?? '');
    await checked('DELETE /v1/migration-policies/:name', policy.location ?? '');
    await checked('POST /v1/migration-policies', '/v1/migration-policies', { name: 'bad', selectors: 3 });

    const token = await checked('POST /v1/tokens', '/v1/tokens', { name: 'oa-viewer', role: 'viewer' });
    expect(token.status).toBe(201);
    await checked('GET /v1/tokens', '/v1/tokens');
    await checked('PATCH /v1/servers/:id', '/v1/servers/oa-1', { labels: {} }, String(token.body.token));
    await checked('DELETE /v1/tokens/:id', '/v1/tokens/oa-viewer');
    await checked('GET /v1/hosts', '/v1/hosts', undefined, 'wrong');
    await checked('POST /v1/enrolment-tokens', '/v1/enrolment-tokens', { host: 'oa-new' });
    await checked('GET /v1/migration-alerts', '/v1/migration-alerts');
    await checked('GET /v1/migration-alert-events', '/v1/migration-alert-events');
  });
});
