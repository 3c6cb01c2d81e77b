import { expect } from 'chai';
import fc from 'fast-check';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type AuditRecord, GENESIS_PREV, parseAuditLine, readAudit, recordHash, verifyAudit } from '../../src/audit/index.js';
import { canonicalJson } from '../../src/policy/index.js';
import { TempDir, codeOfAsync, writeSampleLog } from './helpers.js';

const N = 30;

/** Byte offset at which each line starts, plus the end. */
function lineStarts(buf: Buffer): number[] {
  const out = [0];
  for (let i = 0; i < buf.length; i++) if (buf[i] === 10) out.push(i + 1);
  return out;
}

describe('audit/verify: finding tampering', () => {
  const tmp = new TempDir();
  let dir: string;
  let original: Buffer;
  let lines: string[];
  let path: string;
  let n = 0;

  before(async () => {
    dir = await tmp.make();
    const src = join(dir, 'original.jsonl');
    await writeSampleLog(src, N);
    original = await readFile(src);
    lines = original.toString('utf8').split('\n').slice(0, N);
  });
  beforeEach(() => {
    path = join(dir, `case-${++n}.jsonl`);
  });
  after(() => tmp.remove());

  async function verifyText(text: string | Buffer, expectHead?: string) {
    await writeFile(path, text);
    return verifyAudit(path, expectHead === undefined ? {} : { expectHead });
  }
  const join_ = (ls: string[]) => ls.map((l) => l + '\n').join('');

  it('accepts the untouched log and reports its head; an empty log has the genesis head', async () => {
    const last = parseAuditLine(Buffer.from(lines[N - 1]!));
    expect(await verifyText(original)).to.deep.equal({ ok: true, records: N, head: last.hash });
    expect(await verifyText('')).to.deep.equal({ ok: true, records: 0, head: GENESIS_PREV });
  });

  it('names the record when any one byte of any record is changed (property)', async () => {
    const starts = lineStarts(original);
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: original.length - 1 }), fc.integer({ min: 1, max: 255 }), async (pos, delta) => {
        const bad = Buffer.from(original);
        bad[pos] = (bad[pos]! + delta) % 256;
        const line = starts.findIndex((s, i) => pos >= s && pos < (starts[i + 1] ?? Infinity)) + 1;
        const v = await verifyText(bad);
        expect(v.ok, `byte ${pos}`).to.equal(false);
        if (!v.ok) {
          expect([v.line, v.seq], `byte ${pos} (${v.code}: ${v.sentence})`).to.deep.equal([line, line]);
          expect(v.records).to.equal(line - 1);
        }
      }),
      { numRuns: 300 },
    );
  });

  const edits: [string, () => string, number, string][] = [
    ['a deleted record', () => join_(lines.filter((_, i) => i !== 11)), 12, 'ERR_AUDIT_SEQ'],
    ['a deleted first record', () => join_(lines.slice(1)), 1, 'ERR_AUDIT_SEQ'],
    ['a duplicated record', () => join_([...lines.slice(0, 8), lines[7]!, ...lines.slice(8)]), 9, 'ERR_AUDIT_SEQ'],
    ['two records swapped', () => join_([...lines.slice(0, 20), lines[21]!, lines[20]!, ...lines.slice(22)]), 21, 'ERR_AUDIT_SEQ'],
    ['a blank line inserted', () => join_([...lines.slice(0, 5), '', ...lines.slice(5)]), 6, 'ERR_AUDIT_PARSE'],
    ['the same record re-serialized with spaces', () => join_([...lines.slice(0, 3), JSON.stringify(JSON.parse(lines[3]!), null, 1).replace(/\n/g, ''), ...lines.slice(4)]), 4, 'ERR_AUDIT_PARSE'],
    ['the last newline removed', () => join_(lines).slice(0, -1), N, 'ERR_AUDIT_TORN'],
  ];
  for (const [what, make, line, code] of edits) {
    it(`names the first bad record for ${what}`, async () => {
      const v = await verifyText(make());
      expect(v).to.include({ ok: false, line, seq: line, code });
    });
  }

  it('names the record after a forged record inserted with a valid seq, prev and hash', async () => {
    const prev = parseAuditLine(Buffer.from(lines[9]!));
    const forged: Omit<AuditRecord, 'hash'> = { seq: 11, time: prev.time, kind: 'task.start', actors: { requester: { id: 'mallory' } }, prev: prev.hash };
    const line = canonicalJson({ ...forged, hash: recordHash(forged) });
    const v = await verifyText(join_([...lines.slice(0, 10), line, ...lines.slice(10)]));
    expect(v).to.include({ ok: false, line: 12, seq: 12, code: 'ERR_AUDIT_SEQ' });
  });

  it('names a record edited with its own hash recomputed by the prev of the record after it', async () => {
    const r = parseAuditLine(Buffer.from(lines[14]!));
    const { hash: _h, ...body } = { ...r, details: { ...r.details, i: 999 } };
    const v = await verifyText(join_([...lines.slice(0, 14), canonicalJson({ ...body, hash: recordHash(body) }), ...lines.slice(15)]));
    expect(v).to.include({ ok: false, line: 16, code: 'ERR_AUDIT_CHAIN' });
  });

  it('with an anchored head: finds records cut off the end, and a chain rewritten from some record on', async () => {
    const head = parseAuditLine(Buffer.from(lines[N - 1]!)).hash;
    expect((await verifyText(join_(lines.slice(0, N - 2)))).ok, 'a cut chain is valid on its own').to.equal(true);
    expect(await verifyText(join_(lines.slice(0, N - 2)), head)).to.include({ ok: false, code: 'ERR_AUDIT_HEAD', records: N - 2 });
    // Rewrite records 20.. (20 names mallory) with consistent hashes: valid alone, not with the anchor.
    const forgedBody = { ...parseAuditLine(Buffer.from(lines[19]!)), actors: { requester: { id: 'mallory' } } } as Partial<AuditRecord>;
    delete forgedBody.hash;
    const first = { ...forgedBody, hash: recordHash(forgedBody as AuditRecord) } as AuditRecord;
    const chain = [...lines.slice(0, 19), canonicalJson(first)];
    let p = first.hash;
    for (const l of lines.slice(20)) {
      const { hash: _h, ...body } = { ...parseAuditLine(Buffer.from(l)), prev: p };
      p = recordHash(body);
      chain.push(canonicalJson({ ...body, hash: p }));
    }
    expect((await verifyText(join_(chain))).ok, 'a consistently rewritten chain is valid on its own').to.equal(true);
    expect(await verifyText(join_(chain), head)).to.include({ ok: false, code: 'ERR_AUDIT_HEAD' });
    // An anchor taken earlier still holds after the log grew.
    expect((await verifyText(original, parseAuditLine(Buffer.from(lines[9]!)).hash)).ok).to.equal(true);
  });

  it('reads records by kind, task, agent, requester and time range, streaming', async () => {
    await writeFile(path, original);
    const seqs = async (f: Parameters<typeof readAudit>[1]) => {
      const out: number[] = [];
      for await (const r of readAudit(path, f)) out.push(r.seq);
      return out;
    };
    const all = Array.from({ length: N }, (_, i) => i + 1);
    expect(await seqs({})).to.deep.equal(all);
    expect(await seqs({ kind: 'task.start' })).to.deep.equal(all.filter((s) => (s - 1) % 7 === 3));
    expect(await seqs({ kind: ['revoke', 'task.end'] })).to.deep.equal(all.filter((s) => [4, 5].includes((s - 1) % 7)));
    expect(await seqs({ task: 't-2' })).to.deep.equal(all.filter((s) => (s - 1) % 5 === 2));
    expect(await seqs({ agent: 'spiffe://example.org/agent/indexer' })).to.deep.equal(all.filter((s) => (s - 1) % 2 === 1));
    expect(await seqs({ requester: 'alice' })).to.deep.equal(all.filter((s) => (s - 1) % 3 === 0));
    expect(await seqs({ since: '2026-01-01T00:00:10Z', until: new Date(Date.UTC(2026, 0, 1, 0, 0, 15)) })).to.deep.equal([11, 12, 13, 14, 15]);
    expect(await codeOfAsync(seqs({ since: 'yesterday' }))).to.equal('ERR_INPUT_INVALID');
    await writeFile(path, join_([...lines.slice(0, 3), 'not json']));
    expect(await codeOfAsync(seqs({}))).to.equal('ERR_AUDIT_PARSE');
    await writeFile(path, join_(lines.slice(0, 3)) + '{"seq":4');
    expect(await seqs({})).to.deep.equal([1, 2, 3]);
  });

  it('reports a missing file as ERR_AUDIT_IO', async () => {
    expect(await codeOfAsync(verifyAudit(join(dir, 'nope.jsonl')))).to.equal('ERR_AUDIT_IO');
  });
});
