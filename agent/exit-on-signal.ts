import { errorMessage, type Logger } from './log.ts';

/** SIGINT or SIGTERM: `stop` once, then exit 0 (1 if it failed). A second signal while stopping changes nothing. */
export function exitOnSignal(log: Logger, stop: () => Promise<void>, what = ''): void {
  let exiting = false;
  const onSignal = (name: string): void => {
    if (exiting) return;
    exiting = true;
    log(`${name} received${what}`);
    stop().then(
      () => process.exit(0),
      (error) => {
        log(`stop failed: ${errorMessage(error)}`);
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => onSignal('SIGINT'));
  process.on('SIGTERM', () => onSignal('SIGTERM'));
}
