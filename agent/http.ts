import { sameSecret } from '../domain/host-credential.ts';
import type { Context } from 'hono';
import type { z } from 'zod';
import { AgentFailure } from './errors.ts';

/** Reads and validates a JSON body; every problem becomes a 400 that names the field and what was expected. */
export async function readBody<S extends z.ZodType>(c: Context, schema: S): Promise<z.output<S>> {
  const text = await c.req.text();
  let value: unknown = undefined;
  if (text.trim() !== '') {
    try {
      value = JSON.parse(text);
    } catch (error) {
      throw new AgentFailure(
        400,
        'invalid_json',
        `body is not valid JSON: ${(error as Error).message}`,
        'body',
      );
    }
  }
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issues = result.error.issues;
  const fieldOf = (path: readonly PropertyKey[]): string =>
    path.length === 0 ? 'body' : path.map(String).join('.');
  const first = issues[0];
  const message = issues
    .slice(0, 5)
    .map((issue) => `${fieldOf(issue.path)}: ${issue.message}`)
    .join('; ');
  throw new AgentFailure(400, 'invalid_request', message, first === undefined ? 'body' : fieldOf(first.path));
}

export function bearerToken(c: Context): string | null {
  const header = c.req.header('authorization') ?? '';
  const match = /^Bearer\s+(.+)$/i.exec(header.trim());
  return match?.[1] ?? null;
}

export function tokenMatches(expected: string, given: string | null): boolean {
  return given !== null && sameSecret(given, expected);
}

export function failureResponse(c: Context, failure: AgentFailure): Response {
  return c.json(failure.toJSON(), failure.status);
}
