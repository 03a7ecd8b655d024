import { MigrationSettingsError } from '../domain/migration-config.ts';
import { ApiError } from './errors.ts';

/** Config and policy validation lives in domain/; its errors become the API's 400 naming the field. */
export function asApiError<T>(parse: () => T): T {
  try {
    return parse();
  } catch (err) {
    if (err instanceof MigrationSettingsError) {
      throw new ApiError(400, 'invalid_request', err.message, err.field, { issues: err.issues });
    }
    throw err;
  }
}
