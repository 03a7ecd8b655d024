import type { AgentError } from '../domain/agent-contract.ts';

export type FailureStatus = 400 | 401 | 403 | 404 | 409 | 422 | 500 | 501 | 502 | 503;

/** An expected failure that the HTTP layer turns into { error: { code, message, field? } } with its status. */
export class AgentFailure extends Error {
  constructor(
    readonly status: FailureStatus,
    readonly code: string,
    message: string,
    readonly field?: string,
  ) {
    super(message);
    this.name = 'AgentFailure';
  }

  toJSON(): AgentError {
    return {
      error: {
        code: this.code,
        message: this.message,
        ...(this.field === undefined ? {} : { field: this.field }),
      },
    };
  }
}

export function guestNotFound(id: string): AgentFailure {
  return new AgentFailure(404, 'guest_not_found', `no guest with id '${id}' on this host`, 'id');
}

export function conflict(code: string, message: string, field?: string): AgentFailure {
  return new AgentFailure(409, code, message, field);
}

export function notImplemented(code: string, message: string, field?: string): AgentFailure {
  return new AgentFailure(501, code, message, field);
}
