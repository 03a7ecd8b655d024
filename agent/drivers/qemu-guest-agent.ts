import { randomInt } from 'node:crypto';
import net from 'node:net';

/**
 * The host side of the QEMU Guest Agent Protocol (https://qemu.org/docs/master/interop/qemu-ga-ref.html),
 * as far as "does the guest answer" needs it: on the unix socket of the guest's org.qemu.guest_agent.0
 * channel (qemu-command.ts), a 0xFF byte (flushes the guest agent's parser of whatever an earlier client
 * left half-sent), `guest-sync-delimited` with a random id, every answer ignored until `{"return": id}`
 * (a guest agent answers requests of earlier clients too), then `guest-ping` → `{"return": {}}`.
 */

/** The sentinel byte: sent, it resets the guest agent's parser; received, it resets ours. */
const SENTINEL = 0xff;

/**
 * Splits the byte stream of a guest agent into its JSON answers: objects one after the other, blanks or
 * anything else between them skipped, a 0xFF byte dropping whatever was half read (guest-sync-delimited
 * puts one before its answer), a value that is no JSON dropped.
 */
export class QgaReader {
  private bytes: number[] = [];
  private depth = 0;
  private inString = false;
  private escaped = false;

  constructor(private readonly maxBytes = 1 << 20) {}

  push(chunk: Uint8Array): unknown[] {
    const values: unknown[] = [];
    for (const byte of chunk) {
      if (byte === SENTINEL) {
        this.reset();
        continue;
      }
      // Only objects: a guest agent answers {"return": …} or {"error": …}.
      if (this.depth === 0 && byte !== 0x7b) continue;
      if (this.bytes.length >= this.maxBytes) {
        this.reset();
        continue;
      }
      this.bytes.push(byte);
      if (this.inString) {
        if (this.escaped) this.escaped = false;
        else if (byte === 0x5c) this.escaped = true;
        else if (byte === 0x22) this.inString = false;
      } else if (byte === 0x22) {
        this.inString = true;
      } else if (byte === 0x7b || byte === 0x5b) {
        this.depth++;
      } else if ((byte === 0x7d || byte === 0x5d) && --this.depth === 0) {
        const text = Buffer.from(this.bytes).toString('utf8');
        this.reset();
        try {
          values.push(JSON.parse(text));
        } catch {
          // Not JSON after all: skipped, as a guest agent skips what it cannot parse.
        }
      }
    }
    return values;
  }

  private reset(): void {
    this.bytes = [];
    this.depth = 0;
    this.inString = false;
    this.escaped = false;
  }
}

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** A guest-sync id: a positive integer a JSON number carries exactly (qemu-ga takes an int). */
export const randomSyncId = (): number => randomInt(1, 2 ** 31);

/**
 * Whether the guest agent behind `socketPath` answers guest-sync and then guest-ping within `timeoutMs`.
 * Never throws: no socket (a guest without the channel, a QEMU that is gone), a channel nobody opened in
 * the guest, a guest that does not run (paused, incoming) or a wrong answer are all `false`.
 */
export function qgaPing(socketPath: string, timeoutMs: number, syncId = randomSyncId()): Promise<boolean> {
  return new Promise((resolve) => {
    const reader = new QgaReader(64 * 1024);
    let stage: 'sync' | 'ping' = 'sync';
    let settled = false;
    const socket = net.createConnection(socketPath);
    const finish = (answered: boolean) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(answered);
    };
    const timer = setTimeout(() => finish(false), timeoutMs);
    socket.on('error', () => finish(false));
    socket.on('close', () => finish(false));
    socket.on('connect', () => {
      const sync = JSON.stringify({ execute: 'guest-sync-delimited', arguments: { id: syncId } });
      socket.write(Buffer.concat([Buffer.from([SENTINEL]), Buffer.from(`${sync}\n`)]));
    });
    socket.on('data', (chunk: Buffer) => {
      for (const value of reader.push(chunk)) {
        if (!isObject(value)) continue;
        if (stage === 'sync') {
          // Answers to an earlier client's requests come first; ours carries our id.
          if (value.return === syncId) {
            stage = 'ping';
            socket.write(`${JSON.stringify({ execute: 'guest-ping' })}\n`);
          }
        } else if ('return' in value || 'error' in value) {
          finish('return' in value);
          return;
        }
      }
    });
  });
}
