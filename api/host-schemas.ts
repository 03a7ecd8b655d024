import { z } from 'zod';

const enableOrDisable = z.enum(['enable', 'disable'], { error: 'enable or disable' });
const FLAGS = 'auto_migrate_on_host_down, auto_migrate_on_host_shutdown';

/** The body of POST /v1/hosts/:id/auto-migrate-on-host-down: Cloudpods' HostAutoMigrateInput; a flag left out keeps its value. */
export const hostAutoMigrateSchema = z
  .strictObject(
    {
      auto_migrate_on_host_down: enableOrDisable.optional(),
      auto_migrate_on_host_shutdown: enableOrDisable.optional(),
    },
    {
      error: (issue) =>
        issue.code === 'unrecognized_keys'
          ? `unknown field(s) ${issue.keys.join(', ')}; the fields are ${FLAGS}`
          : `a JSON object with any of ${FLAGS}`,
    },
  )
  .transform((body) => ({
    ...(body.auto_migrate_on_host_down !== undefined
      ? { autoMigrateOnHostDown: body.auto_migrate_on_host_down === 'enable' }
      : {}),
    ...(body.auto_migrate_on_host_shutdown !== undefined
      ? { autoMigrateOnHostShutdown: body.auto_migrate_on_host_shutdown === 'enable' }
      : {}),
  }));
