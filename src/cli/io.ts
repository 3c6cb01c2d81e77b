/**
 * CLI input and output: reading --data files, writing outputs atomically (all files or none),
 * and printing. Key files are written 0600.
 */
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { WritError } from '../errors.js';

export const MAX_INPUT_BYTES = 64 * 1024 * 1024;

export interface Io {
  out(text: string): void;
  err(text: string): void;
  readStdin(): Buffer;
}

export const processIo: Io = {
  out: (t) => process.stdout.write(t.endsWith('\n') ? t : `${t}\n`),
  err: (t) => process.stderr.write(t.endsWith('\n') ? t : `${t}\n`),
  readStdin: () => readFileSync(0),
};

/** Reads a JSON file (or stdin for "-") into an object. */
export function readJsonInput(path: string, io: Io): Record<string, unknown> {
  let buf: Buffer;
  try {
    buf = path === '-' ? io.readStdin() : readFileSync(path);
  } catch (e) {
    throw new WritError('ERR_INPUT_READ', `Cannot read ${path === '-' ? 'standard input' : path} (${(e as NodeJS.ErrnoException).code ?? 'error'}).`);
  }
  if (buf.length > MAX_INPUT_BYTES) throw new WritError('ERR_INPUT_INVALID', `${path} is larger than 64 MiB.`);
  let v: unknown;
  try {
    v = JSON.parse(buf.toString('utf8'));
  } catch (e) {
    throw new WritError('ERR_INPUT_INVALID', `${path === '-' ? 'Standard input' : path} is not valid JSON: ${(e as Error).message}.`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new WritError('ERR_INPUT_INVALID', `${path} must hold a JSON object.`);
  return v as Record<string, unknown>;
}

export interface OutputFile {
  path: string;
  data: string | Buffer;
  mode: number;
}

/**
 * Writes every file to a temporary name first (fsynced, with its final mode), then renames them
 * all; if any step fails, the temporaries are removed and nothing is left behind.
 */
export function writeFilesAtomically(files: OutputFile[]): void {
  const temps: Array<{ tmp: string; path: string }> = [];
  try {
    for (const f of files) {
      mkdirSync(dirname(f.path), { recursive: true, mode: 0o700 });
      const tmp = join(dirname(f.path), `.${basename(f.path)}.${randomBytes(6).toString('hex')}.tmp`);
      const fd = openSync(tmp, 'wx', f.mode);
      temps.push({ tmp, path: f.path });
      try {
        writeSync(fd, typeof f.data === 'string' ? Buffer.from(f.data) : f.data);
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
    }
    for (const t of temps) renameSync(t.tmp, t.path);
  } catch (e) {
    for (const t of temps) {
      try {
        unlinkSync(t.tmp);
      } catch {
        // renamed already or never created
      }
    }
    if (e instanceof WritError) throw e;
    throw new WritError('ERR_OUTPUT_WRITE', `Cannot write ${files.map((f) => f.path).join(', ')} (${(e as NodeJS.ErrnoException).code ?? 'error'}); nothing was written.`);
  }
}

export function toPem(label: string, der: Buffer): string {
  const b64 = der.toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '');
  return `-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----\n`;
}
