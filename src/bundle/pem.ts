/**
 * Strict PEM (RFC 7468) for certificate files: only whitespace may sit between blocks, labels must
 * match, and the body must be standard base64. Errors name the block by its 1-based position.
 */
import { type ErrorCode, WritError } from '../errors.js';

export interface PemBlock {
  label: string;
  der: Buffer;
}

const BLOCK = /-----BEGIN ([A-Z0-9 ]{1,64})-----\r?\n([\s\S]*?)-----END ([A-Z0-9 ]{1,64})-----/y;
const BASE64_BODY = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/**
 * Decodes every PEM block of `text`. `code` is the error code to throw, `what` names the input in
 * the sentence ("the bundle for example.org"). When `label` is given, every block must carry it.
 */
export function decodePem(text: string, code: ErrorCode, what: string, label?: string): PemBlock[] {
  const blocks: PemBlock[] = [];
  let pos = 0;
  for (;;) {
    while (pos < text.length && /\s/.test(text[pos]!)) pos++;
    if (pos >= text.length) break;
    const n = blocks.length + 1;
    BLOCK.lastIndex = pos;
    const m = BLOCK.exec(text);
    if (!m) {
      const where = blocks.length === 0 ? 'at the start' : `after block ${blocks.length}`;
      throw new WritError(code, `PEM block ${n} of ${what} is malformed: the text ${where} is not a "-----BEGIN ...-----" block.`, {
        details: { block: n },
      });
    }
    const begin = m[1]!;
    const end = m[3]!;
    if (begin !== end) {
      throw new WritError(code, `PEM block ${n} of ${what} begins as "${begin}" but ends as "${end}".`, { details: { block: n } });
    }
    if (label !== undefined && begin !== label) {
      throw new WritError(code, `PEM block ${n} of ${what} is a "${begin}" block; only "${label}" blocks are allowed.`, {
        details: { block: n, label: begin },
      });
    }
    const body = m[2]!.replace(/\s+/g, '');
    if (body.length === 0 || !BASE64_BODY.test(body)) {
      throw new WritError(code, `PEM block ${n} of ${what} does not hold valid base64.`, { details: { block: n } });
    }
    blocks.push({ label: begin, der: Buffer.from(body, 'base64') });
    pos = BLOCK.lastIndex;
  }
  return blocks;
}

/** Encodes one DER blob as a PEM block with 64-character lines. */
export function encodePem(label: string, der: Uint8Array): string {
  const b64 = Buffer.from(der).toString('base64');
  const lines: string[] = [];
  for (let i = 0; i < b64.length; i += 64) lines.push(b64.slice(i, i + 64));
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}
