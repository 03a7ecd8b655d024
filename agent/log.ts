/** One line per notable thing, prefixed with the agent's name so many in-process agents stay readable. */
export type Logger = (message: string) => void;

export function consoleLogger(name: string): Logger {
  return (message) => console.log(`${new Date().toISOString()} agent[${name}] ${message}`);
}

export const silentLogger: Logger = () => {};

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
