/**
 * `npm start`: the whole dev stack on this machine with no configuration. Temporal, PostgreSQL,
 * etcd and InfluxDB (unless the environment names existing ones), schema migrations, the API,
 * the worker, three host agents and two demo guests; then the addresses. Ctrl-C stops it all.
 */
import { dataDir, DEFAULTS, intSetting } from '../domain/config.ts';
import { withLogTail } from './services/log-tail.ts';
import { isPortFree } from './services/ports.ts';
import { repoRoot } from './services/repo-root.ts';
import { loadTemporalDevConfig } from './services/temporal-config.ts';
import { sleep } from './services/proc-table.ts';
import { killStackProcesses, STACK_MARKER, stackProcesses } from './services/stragglers.ts';
import {
  startAgents,
  startApiAndWorker,
  migrateSchema,
  type Tokens,
} from './services/launcher/applications.ts';
import type { ServerSummary } from './services/launcher/api-client.ts';
import { LaunchError, type LaunchContext } from './services/launcher/context.ts';
import { AGENT_NAMES, createLayoutDirs, dataLayout } from './services/launcher/data-layout.ts';
import { ensureDemoGuests } from './services/launcher/demo-guests.ts';
import { startInfrastructure } from './services/launcher/infrastructure.ts';
import { planPorts } from './services/launcher/port-plan.ts';
import { loadRememberedPorts, saveRememberedPorts } from './services/launcher/remembered-ports.ts';
import { RunningStack } from './services/launcher/running-stack.ts';
import { formatSummary } from './services/launcher/summary.ts';
import { tokenFromEnvOrFile } from './services/launcher/tokens.ts';

const say = (message: string): void => console.log(`[dev-stack] ${message}`);
const env = process.env;
const layout = dataLayout(dataDir(env, repoRoot));
// Every process we start inherits this, and so do their children (QEMU): that is how the
// shutdown check and the next start recognise leftovers of this stack.
process.env[STACK_MARKER] = layout.root;

const abort = new AbortController();
const stack = new RunningStack((name, child, exit) => {
  const how = exit.signal ?? `exit code ${exit.code}`;
  console.error(
    `[dev-stack] ${withLogTail(`${name} exited unexpectedly (${how}); its log: ${child.logFile}`, child.logFile)}`,
  );
});

let shuttingDown = false;
let startup: Promise<void> = Promise.resolve();
async function shutdown(exitCode: number): Promise<never> {
  if (shuttingDown) return new Promise<never>(() => undefined);
  shuttingDown = true;
  abort.abort();
  // A server still starting stops itself once its wait is aborted; let those finish first, so
  // that everything is stopped the clean way rather than found as a leftover afterwards.
  await Promise.race([startup.catch(() => undefined), sleep(15_000)]);
  await stack.stopAll(say);
  const leftovers = await killStackProcesses(layout.root);
  for (const p of leftovers) say(`killed a leftover process ${p.pid}: ${p.cmdline.slice(0, 120)}`);
  const still = stackProcesses(layout.root);
  if (still.length > 0) {
    say(`WARNING: still running: ${still.map((p) => `${p.pid} ${p.cmdline.slice(0, 80)}`).join('; ')}`);
  } else {
    say('stopped: no process of this stack is left');
  }
  process.exit(exitCode);
}

// A closed terminal (SIGHUP) must still stop the stack: our children run in their own sessions
// and would not hear it. Writing to that terminal then fails; the stopping must go on regardless.
for (const stream of [process.stdout, process.stderr]) stream.on('error', () => undefined);
let firstSignalAt = 0;
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(signal, () => {
    if (shuttingDown) {
      // tsx relays the terminal's Ctrl-C a moment after the terminal delivered it: not a second request.
      if (Date.now() - firstSignalAt > 1_000) say('already stopping; please wait');
      return;
    }
    firstSignalAt = Date.now();
    say(`${signal}: stopping everything`);
    void shutdown(0);
  });
}

async function main(): Promise<void> {
  createLayoutDirs(layout);
  const previous = await killStackProcesses(layout.root);
  if (previous.length > 0) {
    say(`stopped ${previous.length} leftover process(es) of an earlier run on ${layout.root}`);
  }

  const apiPort = intSetting(env, 'API_PORT', DEFAULTS.apiPort, 1);
  if (!(await isPortFree(apiPort))) {
    throw new LaunchError(`API port ${apiPort} is in use: stop what holds it or set API_PORT`);
  }
  const temporalConfig = loadTemporalDevConfig();
  const reserved = [apiPort, temporalConfig.port, temporalConfig.uiPort];
  const { plan, moved } = await planPorts(loadRememberedPorts(layout.portsFile), AGENT_NAMES, reserved);
  if (moved.length > 0) say(`remembered ports now taken, new ones chosen for: ${moved.join(', ')}`);
  saveRememberedPorts(layout.portsFile, plan);

  const apiToken = tokenFromEnvOrFile(env.API_TOKEN, layout.apiTokenFile);
  const tokens: Tokens = {
    api: apiToken.token,
    agentCredentialKey: tokenFromEnvOrFile(env.AGENT_CREDENTIAL_KEY, layout.agentCredentialKeyFile).token,
    peer: tokenFromEnvOrFile(env.AGENT_PEER_TOKEN, layout.peerTokenFile).token,
  };
  const ctx: LaunchContext = { env, layout, ports: plan, stack, signal: abort.signal, say };

  say(`data dir ${layout.root}, logs in ${layout.logs}`);
  // Between steps: after Ctrl-C, start nothing more.
  const notStopped = (): void => abort.signal.throwIfAborted();
  const infra = await startInfrastructure(ctx);
  notStopped();
  await migrateSchema(ctx, infra);
  notStopped();
  const api = await startApiAndWorker(ctx, infra, apiPort, tokens);
  let agentUrls: Record<string, string> = {};
  let guests: ServerSummary[] = [];
  if (api) {
    notStopped();
    agentUrls = await startAgents(ctx, infra, api, tokens);
    notStopped();
    if (Object.keys(agentUrls).length > 0) guests = await ensureDemoGuests(ctx, api);
  }
  console.log(
    formatSummary(ctx, {
      infra,
      apiUrl: api?.baseUrl ?? null,
      apiTokenFile: apiToken.file,
      agentUrls,
      guests,
    }),
  );
}

startup = main();
startup.catch((error: unknown) => {
  if (shuttingDown) return;
  // Expected failures carry their cause (and the log tail) in the message; a stack trace helps only with bugs.
  const expected = error instanceof LaunchError || !(error instanceof Error) || !env.DEBUG;
  const message = expected ? String(error instanceof Error ? error.message : error) : String(error.stack);
  console.error(`[dev-stack] start failed: ${message}`);
  void shutdown(1);
});
