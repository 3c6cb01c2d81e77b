/**
 * `writ authority` (alias `localauthority`): forced CA rotation, for an SRE who knows
 * `spire-server localauthority x509|jwt show|prepare|activate|taint|revoke -authorityID ...`.
 * Both spellings work: `writ authority x509 activate --authority-id ID` and the flat
 * `writ authority activate --kind x509 --authority-id ID` (kind x509 unless given; show lists both).
 * An X.509 authority is the root in the bundle with its signing CAs, named by the root's hex SKI;
 * a JWT authority is one key, named by its kid. Each step prints what to run next.
 */
import { Option, type Command } from 'commander';
import type { AuthorityJson } from '../server/admin-authority.js';
import type { CliContext } from './context.js';

type Kind = 'x509' | 'jwt';
type Action = 'prepare' | 'activate' | 'taint' | 'revoke';
const LABEL: Record<Kind, string> = { x509: 'X.509 authority', jwt: 'JWT authority' };
const DONE: Record<Action, string> = { prepare: 'Prepared', activate: 'Activated', taint: 'Tainted', revoke: 'Revoked' };
const STATUS_TITLE = { active: 'Active', prepared: 'Prepared', old: 'Old' } as const;

interface ShowAnswer {
  x509: AuthorityJson[];
  jwt: AuthorityJson[];
  bundle_sequence: number;
}

interface StepAnswer {
  action: Action;
  authority: AuthorityJson;
  bundle_sequence: number;
}

const when = (s: number) => new Date(s * 1000).toISOString();

function describe(a: AuthorityJson): string[] {
  return [
    `  Authority ID : ${a.authority_id}`,
    `  Slot         : ${a.slot}`,
    `  Status       : ${a.status}${a.tainted ? ', tainted' : ''}`,
    `  Not before   : ${when(a.not_before)}`,
    `  Expires at   : ${when(a.not_after)}`,
    ...(a.signing_cas ?? []).map((c) => `  Signing CA   : ${c.ski} (${c.status}${c.tainted ? ', tainted' : ''}, expires ${when(c.not_after)})`),
  ];
}

export function printAuthorities(kind: Kind, list: readonly AuthorityJson[]): string {
  const out: string[] = [];
  for (const status of ['active', 'prepared', 'old'] as const) {
    out.push(`${STATUS_TITLE[status]} ${LABEL[kind]}:`);
    const xs = list.filter((a) => a.status === status);
    if (xs.length === 0) out.push(`  No ${status} ${LABEL[kind]} found`);
    for (const a of xs) out.push(...describe(a));
  }
  return `${out.join('\n')}\n`;
}

function nextStep(kind: Kind, r: StepAnswer, old: AuthorityJson | undefined): string {
  const id = r.authority.authority_id;
  switch (r.action) {
    case 'prepare':
      return `It is in the bundle now. Once every agent has synced it (and federated peers have refreshed the bundle), activate it:\n  writ authority ${kind} activate --authority-id ${id}`;
    case 'activate':
      return old
        ? `New SVIDs are issued under it. To make agents replace the old authority's SVIDs now, taint it:\n  writ authority ${kind} taint --authority-id ${old.authority_id}`
        : 'New SVIDs are issued under it.';
    case 'taint':
      return `Agents re-sign what it issued at their next sync${kind === 'jwt' ? ' and drop its cached JWT-SVIDs' : ''}. Once they have, revoke it:\n  writ authority ${kind} revoke --authority-id ${id}`;
    case 'revoke':
      return 'It is removed from the bundle, with its key; nothing it signed verifies against the bundle any more.';
  }
}

export function registerAuthorityCommands(program: Command, ctx: CliContext): void {
  const group = program.command('authority').alias('localauthority').description('forced CA rotation: show, prepare, activate, taint and revoke the X.509 and JWT authorities');

  const show = async (kinds: readonly Kind[]) => {
    const res = await ctx.client().get<ShowAnswer>(kinds.length === 1 ? `/v1/authorities?kind=${kinds[0]}` : '/v1/authorities');
    if (ctx.json()) ctx.io.out(JSON.stringify(res, null, 2));
    else ctx.io.out(`${kinds.map((k) => printAuthorities(k, res[k])).join('\n')}\nBundle sequence: ${res.bundle_sequence}\n`);
  };
  const step = async (kind: Kind, action: Action, authorityId: string | undefined, force = false) => {
    const res = await ctx.client().post<StepAnswer>(`/v1/authorities/${kind}/${action}`, { ...(authorityId === undefined ? {} : { authority_id: authorityId }), ...(force ? { force: true } : {}) });
    if (ctx.json()) return ctx.io.out(JSON.stringify(res, null, 2));
    let old: AuthorityJson | undefined;
    if (action === 'activate') old = (await ctx.client().get<ShowAnswer>(`/v1/authorities?kind=${kind}`))[kind].find((a) => a.status === 'old' && !a.tainted);
    ctx.io.out(`${DONE[action]} ${LABEL[kind]}:\n${describe(res.authority).join('\n')}\nBundle sequence: ${res.bundle_sequence}\n\n${nextStep(kind, res, old)}\n`);
  };
  const kindOption = () => new Option('--kind <kind>', 'x509 (the root and its signing CAs) or jwt').choices(['x509', 'jwt']);
  const idOption = (required: boolean) => {
    const o = new Option('--authority-id <id>', 'hex SKI of the root (x509) or kid (jwt); see `writ authority show`');
    return required ? o.makeOptionMandatory() : o;
  };
  const forceOption = () => new Option('--force', 'x509 revoke: even while agents still hold an agent SVID of it (they must attest again)');
  const verbs: Array<[Action, string]> = [
    ['prepare', 'make the next authority in the free slot; it is published in the bundle at once'],
    ['activate', 'sign with the prepared authority from now on; the active one becomes old'],
    ['taint', 'mark the old authority tainted: agents re-sign everything it issued at once'],
    ['revoke', 'remove the tainted authority and its key from the bundle'],
  ];

  ctx.common(group.command('show').description('list the authorities and their states').addOption(kindOption())).action((f: { kind?: Kind }) => show(f.kind ? [f.kind] : ['x509', 'jwt']));
  for (const [action, what] of verbs) {
    const cmd = group.command(action).description(`${what} (--kind x509 unless given)`).addOption(kindOption().default('x509'));
    if (action !== 'prepare') cmd.addOption(idOption(true));
    if (action === 'revoke') cmd.addOption(forceOption());
    ctx.common(cmd).action((f: { kind: Kind; authorityId?: string; force?: boolean }) => step(f.kind, action, f.authorityId, f.force));
  }
  for (const kind of ['x509', 'jwt'] as const) {
    const sub = group.command(kind).description(`the ${LABEL[kind]}${kind === 'x509' ? ' (root and signing CAs, named by the root SKI)' : ' (named by its kid)'}`);
    ctx.common(sub.command('show').description(`list the ${LABEL[kind]} slots`)).action(() => show([kind]));
    for (const [action, what] of verbs) {
      const cmd = sub.command(action).description(what);
      if (action !== 'prepare') cmd.addOption(idOption(true));
      if (action === 'revoke' && kind === 'x509') cmd.addOption(forceOption());
      ctx.common(cmd).action((f: { authorityId?: string; force?: boolean }) => step(kind, action, f.authorityId, f.force));
    }
  }
}
