/**
 * What the server and agent configs share: reading a YAML or JSON file (at most 1 MiB, one mapping
 * at the top), zod fields for durations and checked strings, and turning the first zod issue into
 * ERR_CONFIG_INVALID naming the field.
 */
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { WritError } from './errors.js';
import { parseDurationSeconds } from './duration.js';

export const MAX_CONFIG_BYTES = 1024 * 1024;

/** A duration ("90s", "5m", or seconds) as whole seconds. */
export const durationField = (field: string) =>
  z.union([z.string(), z.number()]).transform((v, ctx) => {
    try {
      return parseDurationSeconds(v, field);
    } catch (e) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, message: e instanceof Error ? e.message : String(e) });
      return z.NEVER;
    }
  });

/** A string that `parse` accepts (it throws a WritError with the reason otherwise). */
export const checkedString = <T>(parse: (v: string) => T) =>
  z.string().transform((v, ctx) => {
    try {
      parse(v);
      return v;
    } catch (e) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, message: e instanceof Error ? e.message : String(e) });
      return z.NEVER;
    }
  });

/** ERR_CONFIG_INVALID for the first issue of a failed parse, naming the field. */
export function configError(error: z.ZodError, source: string): WritError {
  const issue = error.issues[0];
  const field = issue?.path.length ? issue.path.join('.') : '(top level)';
  let why = issue?.message ?? 'is invalid';
  if (issue?.code === z.ZodIssueCode.unrecognized_keys) why = `unknown field(s) ${issue.keys.map((k) => `"${k}"`).join(', ')}`;
  return new WritError('ERR_CONFIG_INVALID', `${source}: field "${field}": ${why.replace(/\.$/, '')}.`, { details: { field } });
}

/** Reads and parses a config file (YAML is a superset of JSON); ERR_CONFIG_READ / ERR_CONFIG_PARSE. */
export function readConfigFile(path: string): unknown {
  let text: string;
  try {
    const buf = readFileSync(path);
    if (buf.length > MAX_CONFIG_BYTES) throw new WritError('ERR_CONFIG_READ', `Config file ${path} is larger than 1 MiB.`);
    text = buf.toString('utf8');
  } catch (e) {
    if (e instanceof WritError) throw e;
    throw new WritError('ERR_CONFIG_READ', `Cannot read config file ${path} (${(e as NodeJS.ErrnoException).code ?? 'unknown error'}).`);
  }
  let raw: unknown;
  try {
    raw = parseYaml(text, { uniqueKeys: true });
  } catch (e) {
    throw new WritError('ERR_CONFIG_PARSE', `Config file ${path} is not valid YAML or JSON: ${e instanceof Error ? e.message.split('\n')[0] : String(e)}`);
  }
  if (raw !== null && raw !== undefined && (typeof raw !== 'object' || Array.isArray(raw))) {
    throw new WritError('ERR_CONFIG_PARSE', `Config file ${path} must hold a mapping of fields at the top level.`);
  }
  return raw;
}
