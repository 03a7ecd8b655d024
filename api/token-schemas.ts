import { z } from 'zod';
import { apiRoles } from '../domain/api-roles.ts';
import { TOKEN_NAME_PATTERN, tokenScopeProblem } from '../domain/api-tokens.ts';

/** The body of POST /v1/tokens. */
export const createTokenSchema = z
  .strictObject({
    name: z
      .string({ error: 'a name is required' })
      .regex(TOKEN_NAME_PATTERN, 'a name of letters, digits, ".", "_" or "-" (at most 63)'),
    role: z.enum(apiRoles, { error: `role must be one of ${apiRoles.join(', ')}` }),
    projects: z.array(z.string().min(1, 'a project name')).optional(),
  })
  .transform((body) => ({
    ...body,
    ...(body.projects !== undefined ? { projects: [...new Set(body.projects)] } : {}),
  }))
  .superRefine((body, ctx) => {
    const problem = tokenScopeProblem(body.role, body.projects);
    if (problem) ctx.addIssue({ code: 'custom', path: ['projects'], message: problem });
  });
