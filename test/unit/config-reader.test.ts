import { describe, expect, it } from 'vitest';
import { ConfigError, EnvReader, urlProblem } from '../../domain/config.ts';

const reader = (env: Record<string, string | undefined>) => new EnvReader(env);

describe('EnvReader: every problem kept, each naming its variable', () => {
  it('treats unset and blank alike, and keeps a value as written', () => {
    const r = reader({ A: '', B: '   ', C: ' x ' });
    expect(r.optional('A')).toBeUndefined();
    expect(r.optional('B')).toBeUndefined();
    expect(r.optional('MISSING')).toBeUndefined();
    expect(r.optional('C')).toBe(' x ');
    expect(r.string('A', 'fallback')).toBe('fallback');
    expect(r.problems).toEqual([]);
  });

  it('names a missing required variable, with what it is for when given', () => {
    const r = reader({ SET: 'v' });
    expect(r.required('SET')).toBe('v');
    expect(r.required('DATABASE_URL')).toBe('');
    expect(r.required('API_TOKEN', 'the bootstrap admin token')).toBe('');
    expect(r.problems).toEqual([
      'DATABASE_URL is required',
      'API_TOKEN is required (the bootstrap admin token)',
    ]);
  });

  it('reads integers within bounds, falling back when unset', () => {
    const r = reader({ OK: ' 9000 ', NEG: '-1', TEXT: 'abc', FRACTION: '2.5', BIG: '70000', EXP: '1e3' });
    expect(r.int('OK', 1, 1, 65535)).toBe(9000);
    expect(r.int('UNSET', 42)).toBe(42);
    expect(r.int('NEG', 7, 0)).toBe(7);
    expect(r.int('TEXT', 7, 1)).toBe(7);
    expect(r.optionalInt('FRACTION', 1)).toBeUndefined();
    expect(r.int('BIG', 8080, 1, 65535)).toBe(8080);
    expect(r.optionalInt('EXP')).toBeUndefined();
    expect(r.optionalInt('UNSET')).toBeUndefined();
    expect(r.problems).toEqual([
      "NEG must be an integer >= 0, got '-1'",
      "TEXT must be an integer >= 1, got 'abc'",
      "FRACTION must be an integer >= 1, got '2.5'",
      "BIG must be an integer from 1 to 65535, got '70000'",
      "EXP must be an integer >= 0, got '1e3'",
    ]);
  });

  it('reads booleans in the usual words, any case', () => {
    const r = reader({
      T1: 'true',
      T2: 'YES',
      T3: '1',
      T4: 'on',
      F1: 'false',
      F2: 'No',
      F3: '0',
      F4: 'off',
      X: 'nope',
    });
    for (const name of ['T1', 'T2', 'T3', 'T4']) expect(r.bool(name, false), name).toBe(true);
    for (const name of ['F1', 'F2', 'F3', 'F4']) expect(r.bool(name, true), name).toBe(false);
    expect(r.bool('UNSET', true)).toBe(true);
    expect(r.optionalBool('UNSET')).toBeUndefined();
    expect(r.optionalBool('T1')).toBe(true);
    expect(r.bool('X', true)).toBe(true);
    expect(r.problems).toEqual(["X must be true or false, got 'nope'"]);
  });

  it('reads one of a list of words', () => {
    const r = reader({ API: 'flux', BAD: 'sql' });
    expect(r.oneOf('API', ['influxql', 'flux'], 'influxql')).toBe('flux');
    expect(r.oneOf('UNSET', ['influxql', 'flux'], 'influxql')).toBe('influxql');
    expect(r.oneOf('BAD', ['influxql', 'flux'], 'influxql')).toBe('influxql');
    expect(r.problems).toEqual(["BAD must be one of influxql, flux, got 'sql'"]);
  });

  it('splits lists and ignores blanks', () => {
    const r = reader({ X: ' a, b,,c ' });
    expect(r.list('X', [])).toEqual(['a', 'b', 'c']);
    expect(r.list('UNSET', ['d'])).toEqual(['d']);
  });

  it('checks URLs by protocol, keeping a password out of the message', () => {
    const r = reader({ GOOD: 'https://x:1', TYPO: 'htp://x', NOT: 'x', CRED: 'ftp://u:secret@x' });
    expect(r.url('GOOD', '', ['http:', 'https:'])).toBe('https://x:1');
    expect(r.url('UNSET', 'http://d', ['http:', 'https:'])).toBe('http://d');
    r.url('TYPO', '', ['http:', 'https:']);
    r.url('NOT', '', ['http:', 'https:']);
    r.url('CRED', '', ['http:', 'https:']);
    expect(r.problems).toEqual([
      "TYPO: 'htp://x' is not an http(s) URL",
      "NOT: 'x' is not an http(s) URL",
      "CRED: 'ftp://***@x' is not an http(s) URL",
    ]);
    expect(urlProblem('mysql://x', ['postgres:', 'postgresql:'])).toBe(
      "'mysql://x' is not a postgres or postgresql URL",
    );
    expect(urlProblem('http://', ['http:'])).toMatch(/is not an http URL/);
  });

  it('remembers the files it was given, for the start-up check', () => {
    const r = reader({ CA: '/etc/ca.pem' });
    expect(r.file('CA')).toBe('/etc/ca.pem');
    expect(r.file('UNSET')).toBeNull();
    expect(r.files).toEqual([{ variable: 'CA', path: '/etc/ca.pem' }]);
  });

  it('refuses half a pair, naming both and the one missing', () => {
    const r = reader({ CERT: '/c', USER: 'u', PASS: 'p' });
    r.pair('CERT', 'KEY', 'the client pair');
    r.pair('KEY', 'CERT', 'the client pair');
    r.pair('USER', 'PASS', 'login');
    r.pair('A', 'B', 'neither');
    expect(r.problems).toEqual([
      'CERT and KEY go together (the client pair): CERT is set without KEY',
      'KEY and CERT go together (the client pair): CERT is set without KEY',
    ]);
  });

  it('hands back the value, or throws every problem in one ConfigError', () => {
    expect(reader({}).result(5)).toBe(5);
    const r = reader({});
    r.required('A');
    r.required('B');
    let error: unknown;
    try {
      r.result(5);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).problems).toEqual(['A is required', 'B is required']);
    expect((error as ConfigError).message).toBe('A is required\nB is required');
  });
});
