import { condition, setCurrentDetails, setHandler, upsertSearchAttributes } from '@temporalio/workflow';
import type { LiveMigrationTimings } from '../domain/live-migration.ts';
import type { CheckResult } from '../domain/prechecks.ts';
import { migrationDetails } from '../domain/workflow-summaries.ts';
import { activitySteps, type RunSteps } from './live-migrate-activities.ts';
import {
  precheckUpdate,
  progressQuery,
  type LiveMigrationPhase,
  type LiveMigrationView,
  type PrecheckAnswer,
} from './live-migrate-messages.ts';
import { slotGrantedSignal } from './migration-slots-messages.ts';
import { Saga } from './saga.ts';
import { DestinationHostKey } from './search-attributes.ts';

/** What every kind of migration run (live, cold, rescue) keeps and answers the same way. */
export interface MigrationRun {
  migrationId: string;
  timings: LiveMigrationTimings;
  /** The run's database-only steps: activities, or local activities (no round trip each). */
  steps: RunSteps;
  saga: Saga;
  view: LiveMigrationView;
  enterPhase(
    phase: LiveMigrationPhase,
    extra?: { destinationHostId?: string; error?: string; checks?: CheckResult[] },
  ): Promise<void>;
  event(
    type: string,
    message: string,
    data?: Record<string, unknown>,
    level?: 'info' | 'warning' | 'error',
  ): Promise<unknown>;
  /** The slots workflow granted this run its slot (signal). */
  slotGranted(): boolean;
  /** Answers the API's precheck update, which waits for it. */
  answerPrechecks(answer: PrecheckAnswer): void;
  /** The destination is reserved: the API, the progress query, the search attribute and the events say so. */
  destinationChosen(host: { id: string; name: string }): Promise<void>;
}

/** Opens a run: its saga, its phase writes and events, and the handlers the API and the slots workflow use. */
export function openMigrationRun(
  migrationId: string,
  timings: LiveMigrationTimings,
  steps: RunSteps = activitySteps,
): MigrationRun {
  const view: LiveMigrationView = { migrationId, phase: 'prechecks', destination: null, error: null };
  let precheck: PrecheckAnswer | null = null;
  let granted = false;
  setHandler(slotGrantedSignal, () => {
    granted = true;
  });
  setHandler(progressQuery, () => view);
  setHandler(precheckUpdate, async () => {
    await condition(() => precheck !== null);
    return precheck as PrecheckAnswer;
  });
  /** The Temporal UI's details line follows the view (no command: replay is unaffected). */
  const showDetails = () =>
    setCurrentDetails(
      migrationDetails({ phase: view.phase, destination: view.destination?.name, error: view.error }),
    );
  showDetails();
  const run: MigrationRun = {
    migrationId,
    timings,
    steps,
    saga: new Saga(),
    view,
    async enterPhase(phase, extra = {}) {
      await steps.write.setMigrationPhase({ migrationId, phase, ...extra });
      // The query follows the row rather than leading it, so a reader never sees a phase the record lacks.
      view.phase = phase;
      showDetails();
    },
    event: (type, message, data, level) =>
      steps.write.recordMigrationEvent({ migrationId, type, message, data, level }),
    slotGranted: () => granted,
    answerPrechecks(answer) {
      precheck = answer;
    },
    async destinationChosen(host) {
      run.answerPrechecks({ ok: true, destination: { id: host.id, name: host.name } });
      view.destination = { id: host.id, name: host.name };
      upsertSearchAttributes([{ key: DestinationHostKey, value: host.name }]);
      showDetails();
      await run.event('destination_chosen', `destination ${host.name}`, { destination: host.name });
    },
  };
  return run;
}
