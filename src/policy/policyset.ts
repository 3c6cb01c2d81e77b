/**
 * Request-time policy with Cedar. A service loads its policies once, then asks per request:
 *
 *   const policies = await PolicySet.load(['policies/tools.cedar']);
 *   const { decision, policyIds } = policies.authorize({
 *     principal: peer.spiffeId,                       // from the verified mTLS peer
 *     action: 'tool.invoke',
 *     resource: { type: 'Writ::Tool', id: 'github.create_issue' },
 *     context: { delegation },                        // from the peer's SVID, if a task
 *   });
 *
 * with, in tools.cedar:
 *
 *   @id("tasks-may-invoke-tools")
 *   permit (principal, action == Writ::Action::"tool.invoke", resource is Writ::Tool)
 *   when {
 *     principal.kind == "task" && context has delegation &&
 *     context.time < context.delegation.deadline &&
 *     context.delegation.requester.authenticatedBy != "unverified"
 *   };
 *
 * Entities and context follow entities.ts. Each policy's id is its `@id("…")` annotation, else
 * "<source>:<index>" (index from 0 in that source); ids must be unique. Policies are parsed,
 * and validated against the schema when one is given, at load: a bad policy is ERR_POLICY_PARSE
 * or ERR_POLICY_INVALID naming the source, line and reason. Templates are not supported.
 * Evaluation errors (e.g. a missing attribute) make that policy not apply and are returned in
 * `errors`; the decision fails closed (deny unless some permit applies and no forbid does).
 * The engine caches each loaded set for the life of the process (cedar-wasm has no eviction), so
 * load policy sets at start or on a reload signal, not per request.
 */
import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { EntityJson } from '@cedar-policy/cedar-wasm/nodejs';
import { type Clock, systemClock, unixSeconds } from '../clock.js';
import { WritError } from '../errors.js';
import type { SpiffeId } from '../spiffeid/index.js';
import { type CedarModule, loadCedar } from './cedar.js';
import { type DelegationRecord, checkDelegationSubject, parseDelegation } from './delegation.js';
import { CEDAR_TYPES, type CedarResource, delegationValue, resourceEntity, toCedarValue, workloadEntities } from './entities.js';

export interface PolicySource {
  /** File path or a name for inline text; used in policy ids and error messages. */
  name: string;
  text: string;
}

export interface PolicySetOptions {
  /** A Cedar schema (Cedar text or JSON form); policies and requests are validated against it. */
  schema?: string | Record<string, unknown>;
  /** The clock for context.time when a request gives none. */
  clock?: Clock;
}

export interface PolicyInfo {
  id: string;
  source: string;
  /** 1-based line of the policy's first character in its source. */
  line: number;
}

export interface AuthorizeContext {
  delegation?: DelegationRecord;
  /** Unix seconds; defaults to the set's clock. */
  time?: number;
  [key: string]: unknown;
}

export interface AuthorizeRequest {
  principal: SpiffeId | string;
  action: string;
  resource: CedarResource;
  context?: AuthorizeContext;
  /** Further entities the policies refer to (e.g. the resource's parents). */
  entities?: EntityJson[];
}

export interface PolicyError {
  policyId?: string;
  message: string;
}

export interface AuthorizeResult {
  decision: 'allow' | 'deny';
  /** The policies that determined the decision (the permits for allow, the forbids for an explicit deny). */
  policyIds: string[];
  errors: PolicyError[];
}

interface Located {
  line: number;
  column: number;
}

/** 1-based line and column of a UTF-8 byte offset in `text`. */
function locate(text: string, byteOffset: number): Located {
  const before = Buffer.from(text, 'utf8').subarray(0, byteOffset).toString('utf8');
  const nl = before.lastIndexOf('\n');
  return { line: before.split('\n').length, column: before.length - nl };
}

interface CedarDetail {
  message: string;
  sourceLocations?: { start: number; label: string | null }[];
}

function describe(e: CedarDetail): string {
  const label = e.sourceLocations?.[0]?.label;
  return label ? `${e.message} (${label})` : e.message;
}

let counter = 0;

export class PolicySet {
  private constructor(
    private readonly cedar: CedarModule,
    private readonly psetId: string,
    private readonly schemaName: string | undefined,
    /** The loaded policies, in load order. */
    readonly policies: readonly PolicyInfo[],
    private readonly clock: Clock,
  ) {}

  /** Reads and loads policy files (Cedar text); ERR_POLICY_READ if one cannot be read. */
  static async load(files: readonly string[], opts: PolicySetOptions = {}): Promise<PolicySet> {
    const sources: PolicySource[] = [];
    for (const name of files) {
      try {
        sources.push({ name, text: await readFile(name, 'utf8') });
      } catch (e) {
        throw new WritError('ERR_POLICY_READ', `The policy file ${name} could not be read.`, { cause: e, details: { file: name } });
      }
    }
    return PolicySet.fromText(sources, opts);
  }

  /** Loads policies from text: one string (named "inline") or named sources. */
  static async fromText(text: string | readonly PolicySource[], opts: PolicySetOptions = {}): Promise<PolicySet> {
    const cedar = await loadCedar();
    const sources = typeof text === 'string' ? [{ name: 'inline', text }] : text;
    const byId: Record<string, string> = {};
    const infos: (PolicyInfo & { text: string })[] = [];
    for (const src of sources) {
      const parts = cedar.policySetTextToParts(src.text);
      if (parts.type === 'failure') {
        const first: CedarDetail = parts.errors[0] ?? { message: 'unknown error' };
        const at = locate(src.text, first.sourceLocations?.[0]?.start ?? 0);
        throw new WritError('ERR_POLICY_PARSE', `${src.name} line ${at.line}, column ${at.column}: ${describe(first)}.`, {
          details: { file: src.name, line: at.line, column: at.column, reason: first.message },
        });
      }
      if (parts.policy_templates.length > 0) {
        throw new WritError('ERR_POLICY_INVALID', `${src.name} holds a policy template; templates are not supported.`, { details: { file: src.name } });
      }
      let cursor = 0;
      parts.policies.forEach((p, index) => {
        const at = src.text.indexOf(p, cursor);
        if (at >= 0) cursor = at + p.length;
        const line = at >= 0 ? src.text.slice(0, at).split('\n').length : 1;
        const json = cedar.policyToJson(p);
        const id = (json.type === 'success' ? json.json.annotations?.id : undefined) || `${src.name}:${index}`;
        if (Object.hasOwn(byId, id)) {
          throw new WritError('ERR_POLICY_INVALID', `${src.name} line ${line}: the policy id "${id}" is used twice.`, { details: { file: src.name, line, policyId: id } });
        }
        byId[id] = p;
        infos.push({ id, source: src.name, line, text: p });
      });
    }
    const policies = { staticPolicies: byId };
    let schemaName: string | undefined;
    const tag = `writ-${++counter}-${randomUUID()}`;
    if (opts.schema !== undefined) {
      const schema = opts.schema as Parameters<CedarModule['validate']>[0]['schema'];
      const parsed = cedar.checkParseSchema(schema);
      if (parsed.type === 'failure') {
        throw new WritError('ERR_POLICY_SCHEMA', `The Cedar schema is invalid: ${describe(parsed.errors[0] ?? { message: 'unknown error' })}.`);
      }
      const v = cedar.validate({ schema, policies });
      if (v.type === 'failure') throw new WritError('ERR_POLICY_SCHEMA', `The policies could not be validated: ${describe(v.errors[0] ?? { message: 'unknown error' })}.`);
      const err = v.validationErrors[0];
      if (err) {
        const info = infos.find((i) => i.id === err.policyId);
        const within = locate(info?.text ?? '', err.error.sourceLocations?.[0]?.start ?? 0);
        const line = (info?.line ?? 1) + within.line - 1;
        const file = info?.source ?? 'inline';
        throw new WritError('ERR_POLICY_INVALID', `${file} line ${line}: policy "${err.policyId}" does not match the schema: ${describe(err.error)}.`, {
          details: { file, line, policyId: err.policyId, reason: err.error.message },
        });
      }
      schemaName = `${tag}-schema`;
      const ps = cedar.preparseSchema(schemaName, schema);
      if (ps.type === 'failure') throw new WritError('ERR_POLICY_SCHEMA', 'The Cedar schema could not be prepared.');
    }
    const pre = cedar.preparsePolicySet(tag, policies);
    if (pre.type === 'failure') throw new WritError('ERR_POLICY_PARSE', `The policies could not be prepared: ${describe(pre.errors[0] ?? { message: 'unknown error' })}.`);
    const list = infos.map(({ id, source, line }) => ({ id, source, line }));
    return new PolicySet(cedar, tag, schemaName, list, opts.clock ?? systemClock);
  }

  /** Decides one request; see the class comment for the entity and context mapping. */
  authorize(req: AuthorizeRequest): AuthorizeResult {
    if (typeof req.action !== 'string' || req.action.length === 0) {
      throw new WritError('ERR_POLICY_REQUEST', 'The action must be a non-empty string.', { details: { field: 'action' } });
    }
    const { delegation, time, ...rest } = req.context ?? {};
    const principal = workloadEntities(req.principal);
    const resource = resourceEntity(req.resource);
    const context = toCedarValue(rest, 'context') as Record<string, ReturnType<typeof toCedarValue>>;
    context.time = time === undefined ? unixSeconds(this.clock) : toCedarValue(time, 'context.time');
    if (typeof context.time !== 'number') throw new WritError('ERR_POLICY_REQUEST', 'The context time must be Unix seconds.', { details: { field: 'context.time' } });
    if (delegation !== undefined) {
      const record = parseDelegation(delegation);
      checkDelegationSubject(record, req.principal);
      context.delegation = delegationValue(record);
    }
    const answer = this.cedar.statefulIsAuthorized({
      principal: principal.uid,
      action: { type: CEDAR_TYPES.action, id: req.action },
      resource: resource.uid,
      context,
      entities: [...principal.entities, ...resource.entities, ...(req.entities ?? [])],
      preparsedPolicySetId: this.psetId,
      ...(this.schemaName === undefined ? {} : { preparsedSchemaName: this.schemaName, validateRequest: true }),
    });
    if (answer.type === 'failure') {
      return { decision: 'deny', policyIds: [], errors: answer.errors.map((e) => ({ message: describe(e) })) };
    }
    const { decision, diagnostics } = answer.response;
    return {
      decision,
      policyIds: [...diagnostics.reason],
      errors: diagnostics.errors.map((e) => ({ policyId: e.policyId, message: describe(e.error) })),
    };
  }
}
