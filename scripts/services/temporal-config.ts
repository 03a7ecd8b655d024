import fs from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { z } from 'zod';
import { repoRoot } from './repo-root.ts';

export const searchAttributeTypes = [
  'Text',
  'Keyword',
  'Int',
  'Double',
  'Bool',
  'Datetime',
  'KeywordList',
] as const;
export type SearchAttributeType = (typeof searchAttributeTypes)[number];

export const temporalLogLevels = ['debug', 'info', 'warn', 'error', 'never'] as const;
export type TemporalLogLevel = (typeof temporalLogLevels)[number];

const temporalDevConfigSchema = z.object({
  namespace: z.string().min(1).default('default'),
  port: z.number().int().min(1).max(65535).default(7233),
  uiPort: z.number().int().min(1).max(65535).default(8233),
  dbFile: z.string().min(1).default('temporal/temporal.db'),
  logLevel: z.enum(temporalLogLevels).default('warn'),
  searchAttributes: z
    .record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/), z.enum(searchAttributeTypes))
    .default({}),
  dynamicConfig: z.record(z.string(), z.unknown()).default({}),
  sqlitePragmas: z
    .record(z.string().regex(/^[a-z_]+$/), z.union([z.string().regex(/^[A-Za-z0-9_-]+$/), z.number().int()]))
    .default({}),
});
export type TemporalDevConfig = z.infer<typeof temporalDevConfigSchema>;

export const TEMPORAL_DEV_CONFIG_FILE = path.join(repoRoot, 'temporal.dev.yaml');

export function loadTemporalDevConfig(file = TEMPORAL_DEV_CONFIG_FILE): TemporalDevConfig {
  const parsed = temporalDevConfigSchema.safeParse(parse(fs.readFileSync(file, 'utf8')) ?? {});
  if (!parsed.success) throw new Error(`${file}: ${z.prettifyError(parsed.error)}`);
  return parsed.data;
}
