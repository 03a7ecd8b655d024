/**
 * Patches shared by several workflows (a workflow's own patch stays beside it). Each marks a change of the
 * commands a run issues; runs begun before it replay the old way (test/histories/ holds their histories).
 */

/** Child runs' workflow ids carry the guest's name (domain/workflow-ids.ts guestRunWorkflowId). */
export const WORKFLOW_IDS_WITH_NAMES = 'workflow-ids-with-names';
