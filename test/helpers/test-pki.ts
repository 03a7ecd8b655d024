import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';

/**
 * A throwaway CA in `dir` (ca.pem, ca-key.pem) that signs a server and a client certificate
 * (server.pem/server-key.pem, client.pem/client-key.pem), with certtool; each `*Template` is certtool's
 * template text for that certificate (its names and key usages), valid for two days.
 */
export function makeTestPki(dir: string, templates: { ca: string; server: string; client: string }): void {
  const certtool = (...args: string[]) => execFileSync('certtool', args, { cwd: dir, stdio: 'pipe' });
  for (const [role, template] of Object.entries(templates)) {
    writeFileSync(path.join(dir, `${role}.info`), `${template}\nexpiration_days = 2\n`);
  }
  certtool('--generate-privkey', '--bits', '2048', '--outfile', 'ca-key.pem');
  certtool(
    ...['--generate-self-signed', '--load-privkey', 'ca-key.pem', '--template', 'ca.info'],
    ...['--outfile', 'ca.pem'],
  );
  for (const role of ['server', 'client']) {
    certtool('--generate-privkey', '--bits', '2048', '--outfile', `${role}-key.pem`);
    certtool(
      ...['--generate-certificate', '--load-privkey', `${role}-key.pem`, '--load-ca-certificate', 'ca.pem'],
      ...['--load-ca-privkey', 'ca-key.pem', '--template', `${role}.info`, '--outfile', `${role}.pem`],
    );
  }
}
