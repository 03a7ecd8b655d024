import type { DataLayout } from './data-layout.ts';
import type { PortPlan } from './port-plan.ts';
import type { RunningStack } from './running-stack.ts';

export interface LaunchContext {
  env: NodeJS.ProcessEnv;
  layout: DataLayout;
  /** Every loopback port of the stack, chosen before anything starts. */
  ports: PortPlan;
  stack: RunningStack;
  /** Aborted by Ctrl-C: every wait gives up at once. */
  signal: AbortSignal;
  say(message: string): void;
}

/** Thrown for a condition the user can fix; printed without a stack trace. */
export class LaunchError extends Error {}
