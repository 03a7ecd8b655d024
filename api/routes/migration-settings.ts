import { Hono } from 'hono';
import { guestMigrationSettings } from '../../activities/migration-settings.ts';
import { ensureCluster, findGuest } from '../../db/inventory.ts';
import {
  clusterMigrationConfig,
  deleteMigrationPolicy,
  findMigrationPolicy,
  insertMigrationPolicy,
  listMigrationPolicies,
  putClusterMigrationConfig,
  updateMigrationPolicy,
} from '../../db/settings-store.ts';
import { configFromRequest, DEFAULT_MIGRATION_CONFIG } from '../../domain/migration-config.ts';
import { policyFromRequest } from '../../domain/migration-policy.ts';
import { callerOf, requireProjectScope } from '../caller.ts';
import type { ApiDeps } from '../deps.ts';
import { ApiError, jsonBody, notFound } from '../errors.ts';
import { asApiError } from '../settings-errors.ts';

/** GET/PUT /v1/migration-config: KubeVirt's fields; a field left out of a PUT restores its default. */
export function migrationConfigRoutes({ db }: ApiDeps) {
  return new Hono()
    .get('/', async (c) => {
      const config = await clusterMigrationConfig(db, await ensureCluster(db));
      return c.json({ config, defaults: DEFAULT_MIGRATION_CONFIG });
    })
    .put('/', async (c) => {
      const body = await jsonBody(c);
      const config = asApiError(() => configFromRequest(body));
      await putClusterMigrationConfig(db, await ensureCluster(db), config);
      return c.json({ config, defaults: DEFAULT_MIGRATION_CONFIG });
    });
}

export function migrationPolicyRoutes({ db }: ApiDeps) {
  return new Hono()
    .get('/', async (c) => c.json({ policies: await listMigrationPolicies(db) }))
    .post('/', async (c) => {
      const body = await jsonBody(c);
      const policy = asApiError(() => policyFromRequest(body));
      if ((await insertMigrationPolicy(db, policy)) === 'exists') {
        throw new ApiError(
          409,
          'conflict',
          `a migration policy named '${policy.name}' already exists`,
          'name',
        );
      }
      return c.json(policy, 201);
    })
    .get('/:name', async (c) => {
      const name = c.req.param('name');
      const policy = await findMigrationPolicy(db, name);
      if (!policy) throw notFound('migration policy', name);
      return c.json(policy);
    })
    .put('/:name', async (c) => {
      const name = c.req.param('name');
      const body = await jsonBody(c);
      const named = body !== null && typeof body === 'object' ? { name, ...(body as object) } : body;
      const policy = asApiError(() => policyFromRequest(named));
      if (policy.name !== name) {
        throw new ApiError(
          400,
          'invalid_request',
          `name: '${policy.name}' differs from the path's '${name}'`,
          'name',
        );
      }
      if (!(await updateMigrationPolicy(db, policy))) throw notFound('migration policy', name);
      return c.json(policy);
    })
    .delete('/:name', async (c) => {
      const name = c.req.param('name');
      if (!(await deleteMigrationPolicy(db, name))) throw notFound('migration policy', name);
      return c.json({ deleted: name });
    });
}

/** GET /v1/servers/:id/migration-policy: the effective settings, which policy won and why. */
export function serverMigrationPolicyRoutes({ db }: ApiDeps) {
  return new Hono().get('/:id/migration-policy', async (c) => {
    const id = c.req.param('id');
    const guest = await findGuest(db, id);
    if (!guest) throw notFound('server', id);
    requireProjectScope(callerOf(c), `server '${guest.name}'`, guest.project);
    const resolved = await guestMigrationSettings(db, guest.id);
    if (!resolved) throw notFound('server', id);
    return c.json({
      server: { id: guest.id, name: guest.name, labels: guest.labels, projectLabels: guest.projectLabels },
      policy: resolved.selection.policy?.name ?? null,
      explanation: resolved.selection.explanation,
      candidates: resolved.selection.candidates,
      settings: resolved.settings,
    });
  });
}
