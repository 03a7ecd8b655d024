import { parseArgs } from 'node:util';
import { ApiRequestError } from './api-client.ts';
import { alertPlan } from './commands/alert-plan.ts';
import {
  alertCreate,
  alertDelete,
  alertEvents,
  alertList,
  alertPlanNow,
  alertShow,
  alertUpdate,
} from './commands/migration-alerts.ts';
import { UsageError, type Command } from './command.ts';
import {
  hostAutoMigrateOnHostDown,
  hostEvents,
  hostList,
  hostMaintenanceEnter,
  hostMaintenanceExit,
  hostShow,
} from './commands/hosts.ts';
import {
  migrationCancel,
  migrationList,
  migrationShow,
  serverLiveMigrate,
  serverMigrate,
} from './commands/migrations.ts';
import {
  serverCreate,
  serverList,
  serverShow,
  serverStart,
  serverStop,
  serverUpdate,
} from './commands/servers.ts';
import {
  migrationConfigSet,
  migrationConfigShow,
  migrationForceComplete,
  migrationPolicyCreate,
  migrationPolicyDelete,
  migrationPolicyList,
  migrationPolicyShow,
  serverMigrationPolicy,
} from './commands/migration-settings.ts';
import { enrolmentTokenCreate, tokenCreate, tokenList, tokenRevoke } from './commands/tokens.ts';
import { hostDelete } from './commands/host-delete.ts';
import { resolveConnection } from './connection.ts';

const commands: Command[] = [
  hostList,
  hostShow,
  hostAutoMigrateOnHostDown,
  hostEvents,
  hostMaintenanceEnter,
  hostMaintenanceExit,
  hostDelete,
  serverList,
  serverShow,
  serverCreate,
  serverUpdate,
  serverStop,
  serverStart,
  serverLiveMigrate,
  serverMigrate,
  migrationList,
  migrationShow,
  migrationCancel,
  migrationForceComplete,
  migrationConfigShow,
  migrationConfigSet,
  migrationPolicyCreate,
  migrationPolicyList,
  migrationPolicyShow,
  migrationPolicyDelete,
  serverMigrationPolicy,
  alertCreate,
  alertList,
  alertShow,
  alertUpdate,
  alertDelete,
  alertEvents,
  alertPlanNow,
  alertPlan,
  tokenCreate,
  tokenList,
  tokenRevoke,
  enrolmentTokenCreate,
];

function help(): string {
  const width = Math.max(...commands.map((c) => c.name.length));
  return [
    'Usage: vmctl <command> [options]',
    '',
    'Commands:',
    ...commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    '',
    'The API address and token come from VMCTL_API_URL/API_URL and API_TOKEN, else from the dev stack data dir.',
  ].join('\n');
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === 'help') {
    console.log(help());
    return name ? 0 : 2;
  }
  const command = commands.find((c) => c.name === name);
  if (!command) {
    console.error(`vmctl: unknown command '${name}'\n\n${help()}`);
    return 2;
  }
  if (rest.includes('--help')) {
    console.log(`Usage: vmctl ${command.usage}\n\n${command.summary}`);
    return 0;
  }
  try {
    const parsed = parseArgs({ args: rest, options: command.options, allowPositionals: true, strict: true });
    await command.run(parsed, command.offline ? { baseUrl: '', token: '' } : resolveConnection(process.env));
    return 0;
  } catch (err) {
    if (err instanceof UsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      console.error(`vmctl ${name}: ${(err as Error).message}\nUsage: vmctl ${command.usage}`);
      return 2;
    }
    if (err instanceof ApiRequestError) {
      console.error(`vmctl ${name}: ${err.message}`);
      return 1;
    }
    console.error(`vmctl ${name}: ${(err as Error).message}`);
    return 1;
  }
}

process.exitCode = await main(process.argv.slice(2));
