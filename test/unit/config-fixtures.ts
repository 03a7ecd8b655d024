import { ConfigError, type Env } from '../../domain/config.ts';

/** What a settings reader refuses in `env`: every problem it names, or none. */
export function problemsOf(read: (env: Env) => unknown, env: Record<string, string>): string[] {
  try {
    read(env);
  } catch (error) {
    if (error instanceof ConfigError) return [...error.problems];
    throw error;
  }
  return [];
}

/** A CA, a certificate and a key at fixed paths, read as the connection options read their files. */
const files: Record<string, string> = { '/ca.pem': 'CA', '/c.pem': 'CERT', '/k.pem': 'KEY' };
export const readFixtureFile = (file: string): Buffer => {
  if (!(file in files)) throw new Error(`ENOENT: no such file, open '${file}'`);
  return Buffer.from(files[file]!);
};
