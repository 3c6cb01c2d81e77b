/**
 * The agents-and-tasks engine of the server: agent identities, tasks, what signing needs to know
 * about them, and the deadline sweep (the server runs it every second). One instance per server.
 */
import { AgentIdentities } from './agents.js';
import type { TaskDeps } from './deps.js';
import { NO_AUDIT, NO_POLICY, NO_REQUESTER_VERIFIER } from './hooks.js';
import { TaskIssuance } from './issuance.js';
import { Tasks } from './tasks.js';

export type TaskServiceDeps = Omit<TaskDeps, 'policy' | 'audit' | 'requesterVerifier'> &
  Partial<Pick<TaskDeps, 'policy' | 'audit' | 'requesterVerifier'>> & {
    /** The audit log file the records go to, for `writ audit show|verify` over the admin API. */
    auditPath?: string;
    /** Called by close() (closes the audit log). */
    onClose?: () => Promise<void>;
  };

/** Refresh the sync-hint parents at least this often, for changes made by another server. */
const HINT_REFRESH_MS = 30_000;

export class TaskService {
  readonly deps: TaskDeps;
  readonly tasks: Tasks;
  readonly agents: AgentIdentities;
  readonly issuance: TaskIssuance;
  readonly auditPath: string | undefined;
  readonly #onClose: (() => Promise<void>) | undefined;
  #hintAt = 0;

  private constructor({ auditPath, onClose, ...deps }: TaskServiceDeps) {
    this.deps = { policy: NO_POLICY, audit: NO_AUDIT, requesterVerifier: NO_REQUESTER_VERIFIER, ...deps };
    this.auditPath = auditPath;
    this.#onClose = onClose;
    this.tasks = new Tasks(this.deps);
    this.issuance = new TaskIssuance(this.deps);
    const changed = () => void this.#refreshHint();
    this.agents = new AgentIdentities(this.deps, this.tasks, changed);
    this.tasks.onChange((ev) => {
      if (ev.kind === 'end') this.issuance.ended(ev.taskId);
      changed();
    });
  }

  static async open(deps: TaskServiceDeps): Promise<TaskService> {
    const s = new TaskService(deps);
    await s.#refreshHint();
    return s;
  }

  async #refreshHint(): Promise<void> {
    try {
      this.#hintAt = this.deps.clock.nowMs();
      await this.issuance.refreshHint();
    } catch (e) {
      this.deps.logger.error({ err: e }, 'could not read which agents serve tasks');
    }
  }

  /** Ends tasks past their deadline (and finishes interrupted cleanups); returns how many ended. */
  async sweep(): Promise<number> {
    const n = await this.tasks.sweep();
    if (n === 0 && this.deps.clock.nowMs() - this.#hintAt >= HINT_REFRESH_MS) await this.#refreshHint();
    return n;
  }

  async close(): Promise<void> {
    await this.#onClose?.();
  }
}
