import type { Event, Host } from '../db/schema.ts';

/** Cloudpods' event columns (ops_time, obj_id, obj_name, action, notes), as for alert rules. */
export function hostEventView(event: Event, host: Pick<Host, 'name'>) {
  return {
    id: event.id,
    at: event.at,
    hostId: event.subjectId,
    hostName: host.name,
    action: event.type,
    level: event.level,
    notes: event.message,
    data: event.data,
    /** Who caused it (the API caller); null for what a workflow decided on its own. */
    requestedBy: event.requestedBy,
  };
}
