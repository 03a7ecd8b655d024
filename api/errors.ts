import type { Context } from 'hono';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import type { z } from 'zod';
import { databaseUnavailableReason } from './database-errors.ts';

/** An error the client caused or must know about; anything else becomes a 500 without details. */
export class ApiError extends Error {
  constructor(
    readonly status: ContentfulStatusCode,
    readonly code: string,
    message: string,
    readonly field?: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
  }
}

export const notFound = (kind: string, idOrName: string) =>
  new ApiError(404, 'not_found', `${kind} '${idOrName}' not found`);

export function errorBody(err: ApiError) {
  return {
    error: {
      code: err.code,
      message: err.message,
      ...(err.field !== undefined ? { field: err.field } : {}),
      ...(err.details ?? {}),
    },
  };
}

export function handleError(err: Error, c: Context) {
  if (err instanceof ApiError) return c.json(errorBody(err), err.status);
  const database = databaseUnavailableReason(err);
  if (database !== null) {
    console.error(`${c.req.method} ${c.req.path}: database unavailable: ${database}`);
    return c.json(
      { error: { code: 'database_unavailable', message: `the database did not answer: ${database}` } },
      503,
    );
  }
  console.error(`${c.req.method} ${c.req.path}: ${err.stack ?? err.message}${causes(err)}`);
  return c.json({ error: { code: 'internal', message: 'internal error; see the API log' } }, 500);
}

/** The stack leaves out what an error wraps (drizzle's "Failed query" wraps PostgreSQL's own error and code). */
function causes(err: Error): string {
  const lines: string[] = [];
  for (let cause = err.cause; cause instanceof Error && lines.length < 5; cause = cause.cause) {
    const code = (cause as { code?: unknown }).code;
    lines.push(`\n  caused by: ${cause.message}${typeof code === 'string' ? ` (${code})` : ''}`);
  }
  return lines.join('');
}

export function describeIssue(issue: z.core.$ZodIssue): { field: string; message: string } {
  const field = issue.path.map(String).join('.') || '(body)';
  return { field, message: `${field}: ${issue.message}` };
}

/** Parses with a zod schema; the first issue becomes a 400 that names the field and what was expected. */
export function parseOr400<T extends z.ZodType>(schema: T, value: unknown): z.output<T> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const first = result.error.issues[0];
  const { field, message } = first ? describeIssue(first) : { field: '(body)', message: 'invalid body' };
  throw new ApiError(400, 'invalid_request', message, field);
}

export async function jsonBody(c: Context): Promise<unknown> {
  const text = await c.req.text();
  if (text.trim() === '') return {};
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new ApiError(400, 'invalid_json', 'request body is not valid JSON', '(body)');
  }
}
