import net from 'node:net';

/** One asynchronous QMP event, e.g. MIGRATION, RESUME, STOP, SHUTDOWN. */
export interface QmpEvent {
  event: string;
  data?: Record<string, unknown>;
  timestamp?: { seconds: number; microseconds: number };
}

export class QmpError extends Error {
  constructor(
    readonly command: string,
    readonly errorClass: string,
    readonly desc: string,
  ) {
    super(`QMP ${command} failed: ${errorClass}: ${desc}`);
    this.name = 'QmpError';
  }
}

export class QmpClosedError extends Error {
  constructor(detail: string) {
    super(`QMP connection closed: ${detail}`);
    this.name = 'QmpClosedError';
  }
}

export class QmpTimeoutError extends Error {
  constructor(command: string, timeoutMs: number) {
    super(`QMP ${command} got no answer within ${timeoutMs} ms`);
    this.name = 'QmpTimeoutError';
  }
}

export interface QmpConnectOptions {
  /** How long to keep trying while QEMU has not created or is not yet accepting on the socket. */
  connectTimeoutMs?: number;
  /** Default per-command timeout. */
  commandTimeoutMs?: number;
}

interface Pending {
  command: string;
  resolve: (value: unknown) => void;
  reject: (error: Error) => void;
  timer: NodeJS.Timeout;
}

type Message = { QMP: unknown } | { id?: unknown; return?: unknown; error?: unknown } | QmpEvent;

const RETRYABLE_CONNECT_ERRORS = new Set(['ENOENT', 'ECONNREFUSED', 'EAGAIN']);
/** A QEMU just spawned creates its QMP socket some tens of ms later: look often, so a migration does not wait on the retry. */
const CONNECT_RETRY_MS = 10;

/**
 * A QMP client over a unix socket: reads the greeting, negotiates capabilities, then sends one JSON
 * command per line with an id and matches the answers by id. Event lines go to the event listeners.
 */
export class QmpClient {
  private readonly pending = new Map<string, Pending>();
  private readonly eventListeners = new Set<(event: QmpEvent) => void>();
  private readonly closeListeners = new Set<(reason: string) => void>();
  private nextId = 1;
  private buffer = '';
  private closedReason: string | null = null;

  private constructor(
    private readonly socket: net.Socket,
    private readonly commandTimeoutMs: number,
  ) {
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => this.onData(chunk));
    socket.on('error', (error) => this.handleClose(error.message));
    socket.on('close', () => this.handleClose('socket closed'));
  }

  static async connect(socketPath: string, options: QmpConnectOptions = {}): Promise<QmpClient> {
    const deadline = Date.now() + (options.connectTimeoutMs ?? 10_000);
    const commandTimeoutMs = options.commandTimeoutMs ?? 10_000;
    for (;;) {
      try {
        const socket = await openSocket(socketPath);
        const client = new QmpClient(socket, commandTimeoutMs);
        await client.handshake(Math.max(1000, deadline - Date.now()));
        return client;
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code ?? '';
        if (!RETRYABLE_CONNECT_ERRORS.has(code) || Date.now() >= deadline) throw error;
        await sleep(CONNECT_RETRY_MS);
      }
    }
  }

  get closed(): boolean {
    return this.closedReason !== null;
  }

  onEvent(listener: (event: QmpEvent) => void): () => void {
    this.eventListeners.add(listener);
    return () => this.eventListeners.delete(listener);
  }

  onClose(listener: (reason: string) => void): () => void {
    this.closeListeners.add(listener);
    return () => this.closeListeners.delete(listener);
  }

  async execute<T = unknown>(
    command: string,
    args?: Record<string, unknown>,
    timeoutMs = this.commandTimeoutMs,
  ): Promise<T> {
    if (this.closedReason !== null) throw new QmpClosedError(this.closedReason);
    const id = `agent-${this.nextId++}`;
    const line = JSON.stringify(
      args === undefined ? { execute: command, id } : { execute: command, arguments: args, id },
    );
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new QmpTimeoutError(command, timeoutMs));
      }, timeoutMs);
      this.pending.set(id, { command, resolve: resolve as (value: unknown) => void, reject, timer });
      this.socket.write(`${line}\n`);
    });
  }

  /** Closes the connection; pending commands fail with QmpClosedError. */
  async close(): Promise<void> {
    if (this.closedReason !== null) return;
    await new Promise<void>((resolve) => {
      this.socket.once('close', () => resolve());
      this.socket.end();
      setTimeout(() => {
        this.socket.destroy();
        resolve();
      }, 500).unref();
    });
    this.handleClose('closed by the client');
  }

  private greeting: { resolve: () => void; reject: (error: Error) => void } | null = null;

  private async handshake(timeoutMs: number): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.socket.destroy();
        reject(new QmpTimeoutError('greeting', timeoutMs));
      }, timeoutMs);
      this.greeting = {
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      };
    });
    await this.execute('qmp_capabilities', undefined, timeoutMs);
  }

  private onData(chunk: string): void {
    this.buffer += chunk;
    let newline = this.buffer.indexOf('\n');
    while (newline >= 0) {
      const line = this.buffer.slice(0, newline).trim();
      this.buffer = this.buffer.slice(newline + 1);
      if (line.length > 0) this.onLine(line);
      newline = this.buffer.indexOf('\n');
    }
  }

  private onLine(line: string): void {
    let message: Message;
    try {
      message = JSON.parse(line) as Message;
    } catch {
      return; // QEMU only sends JSON; a torn line cannot be matched to anything anyway.
    }
    if ('QMP' in message) {
      this.greeting?.resolve();
      this.greeting = null;
      return;
    }
    if ('event' in message && typeof message.event === 'string') {
      for (const listener of this.eventListeners) listener(message as QmpEvent);
      return;
    }
    const reply = message as { id?: unknown; return?: unknown; error?: { class?: string; desc?: string } };
    const pending = typeof reply.id === 'string' ? this.pending.get(reply.id) : undefined;
    if (pending === undefined || typeof reply.id !== 'string') return;
    this.pending.delete(reply.id);
    clearTimeout(pending.timer);
    if (reply.error !== undefined) {
      pending.reject(
        new QmpError(pending.command, reply.error.class ?? 'GenericError', reply.error.desc ?? ''),
      );
    } else {
      pending.resolve(reply.return);
    }
  }

  private handleClose(reason: string): void {
    if (this.closedReason !== null) return;
    this.closedReason = reason;
    this.greeting?.reject(new QmpClosedError(reason));
    this.greeting = null;
    for (const [id, pending] of this.pending) {
      clearTimeout(pending.timer);
      pending.reject(new QmpClosedError(reason));
      this.pending.delete(id);
    }
    for (const listener of this.closeListeners) listener(reason);
    this.socket.destroy();
  }
}

function openSocket(socketPath: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.createConnection(socketPath);
    socket.once('connect', () => {
      socket.removeListener('error', reject);
      resolve(socket);
    });
    socket.once('error', reject);
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
