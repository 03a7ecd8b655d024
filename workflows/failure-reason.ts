/** The innermost message of a Temporal failure chain (ActivityFailure → ApplicationFailure → …). */
export function failureReason(err: unknown): string {
  let current: unknown = err;
  let message = String(err);
  while (current instanceof Error) {
    message = current.message;
    current = current.cause;
  }
  return message;
}
