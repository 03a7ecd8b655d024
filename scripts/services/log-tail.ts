import fs from 'node:fs';

/** The last lines of a log file, for error messages; empty when the file cannot be read. */
export function logTail(file: string, lines = 20): string {
  try {
    const size = fs.statSync(file).size;
    const length = Math.min(size, 16_384);
    const buffer = Buffer.alloc(length);
    const fd = fs.openSync(file, 'r');
    try {
      fs.readSync(fd, buffer, 0, length, size - length);
    } finally {
      fs.closeSync(fd);
    }
    return buffer.toString('utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

export function withLogTail(message: string, file: string): string {
  const tail = logTail(file);
  return tail ? `${message}\nlast lines of ${file}:\n${indent(tail)}` : `${message} (log: ${file})`;
}

function indent(text: string): string {
  return text
    .split('\n')
    .map((line) => `  | ${line}`)
    .join('\n');
}
