import { expect } from 'chai';
import fc from 'fast-check';
import { type AuditInput, GENESIS_PREV, parseAuditLine, recordHash } from '../../src/audit/index.js';
import { sealRecord } from '../../src/audit/record.js';
import { isWritError } from '../../src/errors.js';
import { canonicalJson } from '../../src/policy/index.js';

const segment = fc.stringMatching(/^[a-z0-9-]{1,12}$/);
const party = fc.record(
  { id: fc.string({ minLength: 1, maxLength: 30 }).filter((s) => !/[\u0000-\u001f\u007f]/.test(s)), authenticatedBy: fc.constantFrom('os-user' as const, 'spiffe-id' as const, 'oidc' as const, 'unverified' as const) }, // eslint-disable-line no-control-regex
  { requiredKeys: ['id'] },
);
const input: fc.Arbitrary<AuditInput> = fc.record(
  {
    kind: fc.constantFrom('task.start', 'svid.issue', 'policy.decision', 'service.x_y.z-1'),
    actors: fc.record({ requester: party, approver: party, agent: segment.map((s) => `spiffe://example.org/agent/${s}`), task: segment, workload: segment.map((s) => `spiffe://example.org/w/${s}`) }, { requiredKeys: [] }),
    decision: fc.record({ effect: fc.constantFrom('allow' as const, 'deny' as const), reason: fc.string({ minLength: 1, maxLength: 20 }).filter((s) => !/[\u0000-\u001f\u007f]/.test(s)), policyIds: fc.array(segment, { maxLength: 3 }) }, { requiredKeys: ['effect'] }), // eslint-disable-line no-control-regex
    details: fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 3 })) as fc.Arbitrary<NonNullable<AuditInput['details']>>,
  },
  { requiredKeys: ['kind'] },
);

describe('audit/record: the stored record form', () => {
  it('parses back every sealed record exactly, and its hash covers everything but itself (property)', () => {
    fc.assert(
      fc.property(input, fc.integer({ min: 1, max: 1e9 }), fc.date({ min: new Date(0), max: new Date(Date.UTC(9999, 0)), noInvalidDate: true }), (inp, seq, t) => {
        const { record, line } = sealRecord(inp, seq, GENESIS_PREV, t.toISOString());
        expect(line.at(-1)).to.equal(10);
        const back = parseAuditLine(line.subarray(0, -1));
        expect(back).to.deep.equal(JSON.parse(canonicalJson(record)));
        expect(recordHash(back)).to.equal(record.hash);
        expect(recordHash({ ...back, seq: seq + 1 })).to.not.equal(record.hash);
      }),
      { numRuns: 300 },
    );
  });

  it('answers any line with a record or ERR_AUDIT_PARSE, never anything else (property)', () => {
    const lines = fc.oneof(
      fc.uint8Array({ maxLength: 200 }).map((a) => Buffer.from(a)),
      fc.jsonValue().map((v) => Buffer.from(JSON.stringify(v))),
      fc.tuple(input, fc.constantFrom('seq', 'time', 'prev', 'hash', 'kind', 'extra'), fc.jsonValue({ maxDepth: 1 })).map(([inp, k, v]) => {
        const { record } = sealRecord(inp, 1, GENESIS_PREV, '2026-01-01T00:00:00.000Z');
        return Buffer.from(canonicalJson({ ...record, [k]: v }));
      }),
    );
    fc.assert(
      fc.property(lines, (line) => {
        try {
          parseAuditLine(line);
        } catch (e) {
          expect(isWritError(e) && e.code, String(e)).to.equal('ERR_AUDIT_PARSE');
        }
      }),
      { numRuns: 1000 },
    );
  });
});
