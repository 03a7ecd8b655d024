import { apiAllPages, apiRequest } from '../api-client.ts';
import { filterQuery } from '../list-pages.ts';
import { onePositional, stringOption, UsageError, type Command } from '../command.ts';
import { table } from '../table.ts';

interface TokenView {
  id: string;
  name: string;
  role: string;
  projects: string[] | null;
  createdAt: string;
  createdBy: { by: string } | null;
  lastUsedAt: string | null;
  revoked: boolean;
  revokedAt: string | null;
}

const scope = (projects: string[] | null) => (projects ? projects.join(',') : '(all)');

export const tokenCreate: Command = {
  name: 'token-create',
  usage: 'token-create --role viewer|operator|admin [--project PROJECT]... <NAME>',
  summary:
    'Create an API token (admin only); the token is printed once, on stdout alone, everything else on stderr',
  options: { role: { type: 'string' }, project: { type: 'string', multiple: true } },
  async run(args, conn) {
    const name = onePositional(args, 'NAME');
    const role = stringOption(args, 'role');
    if (role === undefined) throw new UsageError('--role viewer|operator|admin is required');
    const raw = args.values.project;
    const projects = raw === undefined ? undefined : (Array.isArray(raw) ? raw : [raw]).map(String);
    const created = await apiRequest<TokenView & { token: string }>(conn, 'POST', '/v1/tokens', {
      name,
      role,
      ...(projects ? { projects } : {}),
    });
    console.error(
      `token '${created.name}' created: id ${created.id}, role ${created.role}, projects ${scope(created.projects)}`,
    );
    console.log(created.token);
    console.error('it is shown only this once: store it now (vmctl reads it from API_TOKEN)');
  },
};

export const tokenList: Command = {
  name: 'token-list',
  usage: 'token-list [--role viewer|operator|admin] [--revoked true|false]',
  summary:
    'List API tokens (admin only): name, role, projects, last use, revoked; never the tokens themselves',
  options: { role: { type: 'string' }, revoked: { type: 'string' } },
  async run(args, conn) {
    const query = filterQuery(args, ['role', 'revoked']);
    const tokens = await apiAllPages<TokenView>(conn, '/v1/tokens', query);
    console.log(
      table(
        ['ID', 'Name', 'Role', 'Projects', 'Created', 'Created by', 'Last used', 'Revoked'],
        tokens.map((t) => [
          t.id,
          t.name,
          t.role,
          scope(t.projects),
          t.createdAt,
          t.createdBy?.by,
          t.lastUsedAt ?? 'never',
          t.revokedAt ?? 'no',
        ]),
      ),
    );
  },
};

export const tokenRevoke: Command = {
  name: 'token-revoke',
  usage: 'token-revoke <ID_OR_NAME>',
  summary: 'Revoke an API token (admin only): its next request is refused',
  options: {},
  async run(args, conn) {
    const id = onePositional(args, 'ID_OR_NAME');
    const revoked = await apiRequest<TokenView>(conn, 'DELETE', `/v1/tokens/${encodeURIComponent(id)}`);
    console.log(`token '${revoked.name}' (${revoked.id}) revoked at ${revoked.revokedAt}`);
  },
};

export const enrolmentTokenCreate: Command = {
  name: 'enrolment-token-create',
  usage: 'enrolment-token-create [--host NAME] [--expires-in 1h] [NAME]',
  summary:
    'Create a one-time host enrolment token (admin only; default expiry 1h; --host: only for that host name, and needed to re-enrol an existing host); printed once, on stdout alone',
  options: { host: { type: 'string' }, 'expires-in': { type: 'string' } },
  async run(args, conn) {
    const [name, ...rest] = args.positionals;
    if (rest.length > 0) throw new UsageError(`unexpected argument '${rest[0]}'`);
    const host = stringOption(args, 'host');
    const expiresIn = stringOption(args, 'expires-in');
    const created = await apiRequest<{ id: string; host: string | null; expiresAt: string; token: string }>(
      conn,
      'POST',
      '/v1/enrolment-tokens',
      {
        ...(name ? { name } : {}),
        ...(host ? { host } : {}),
        ...(expiresIn ? { expires_in: /^\d+$/.test(expiresIn) ? Number(expiresIn) : expiresIn } : {}),
      },
    );
    console.error(
      `enrolment token ${created.id} created${created.host ? ` for host ${created.host}` : ''}, good for one enrolment until ${created.expiresAt}`,
    );
    console.log(created.token);
    console.error('give it to the host agent as AGENT_ENROLMENT_TOKEN; it is shown only this once');
  },
};
