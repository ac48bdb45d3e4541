import type { Kysely } from 'kysely';
import type { Actor, AppContext } from '../../platform/context.js';
import type { DataDb, TaskTable } from '../../platform/db/schema.js';
import { DomainError } from '../../platform/errors.js';
import { newId } from '../../platform/ids.js';
import { appendAudit, recordAudit, type AuditEvent } from '../audit/index.js';
import { activeAgreementsOf } from '../consent/index.js';
import {
  describeHoldings,
  destroyCustomerKeys,
  lockCustomer,
  openSubjectFields,
  sealSubjectFields,
} from '../customers/index.js';
import { findActiveStaffRole, roleAllows } from '../staff/index.js';
import * as store from './tasks.store.js';

/**
 * Tasks: the only grant by which staff read personal data. An open task assigned to a staff
 * member, for one customer and one purpose, lets that member read that customer's fields of
 * the purpose's categories (while the customer's agreement lasts), until the task is closed or
 * falls due. Titles are sealed under a key of the customer, so erasing the customer shreds them.
 */

export interface Task {
  readonly id: string;
  readonly customerId: string;
  readonly purpose: string;
  readonly title: string;
  readonly assigneeId: string;
  readonly createdBy: string;
  readonly createdAt: string;
  readonly dueAt: string;
  readonly status: 'open' | 'closed';
  readonly closedAt: string | null;
}

async function toTask(ctx: AppContext, row: TaskTable): Promise<Task> {
  const open = await openSubjectFields(ctx, row.workspace_id, row.customer_id, 'tasks', {
    [`title:${row.id}`]: row.title_sealed,
  });
  return {
    id: row.id,
    customerId: row.customer_id,
    purpose: row.purpose_key,
    title: open[`title:${row.id}`] ?? '',
    assigneeId: row.assignee_id,
    createdBy: row.created_by,
    createdAt: row.created_at,
    dueAt: row.due_at,
    status: row.status === 'closed' ? 'closed' : 'open',
    closedAt: row.closed_at,
  };
}

/** Refused input of a task change, audited before it is answered. */
async function refuse(ctx: AppContext, actor: Actor, audit: AuditEvent, error: DomainError) {
  await recordAudit(ctx, actor, { ...audit, outcome: 'denied' });
  return error;
}

async function checkAssignee(
  ctx: AppContext,
  actor: Actor,
  staffId: string,
  audit: AuditEvent,
): Promise<void> {
  const role = await findActiveStaffRole(ctx, actor.workspaceId, staffId);
  if (role === undefined || !roleAllows(role, 'customers:read')) {
    await recordAudit(ctx, actor, {
      ...audit,
      fields: [...(audit.fields ?? []), `staff:${staffId}`],
      outcome: 'denied',
      reason: 'assignee_not_eligible',
    });
    throw new DomainError(
      'invalid_input',
      'The assignee must be an active staff member whose role works with customers.',
      { fields: ['body.assigneeId'] },
    );
  }
}

/**
 * Opens a task. The customer must exist in the actor's workspace (404 otherwise, as for a
 * customer that is not there) and have an active agreement for the purpose (409).
 */
export async function createTask(
  ctx: AppContext,
  actor: Actor,
  input: { customerId: string; purpose: string; title: string; assigneeId: string; dueAt: string },
): Promise<Task> {
  const now = ctx.clock.now();
  const dueAt = new Date(input.dueAt).toISOString();
  const audit: AuditEvent = {
    action: 'task.create',
    customerId: input.customerId,
    purpose: input.purpose,
    outcome: 'denied',
  };
  if (dueAt <= now.toISOString()) {
    throw await refuse(
      ctx,
      actor,
      { ...audit, reason: 'due_not_future' },
      new DomainError('invalid_input', 'The due date must be in the future.', {
        fields: ['body.dueAt'],
      }),
    );
  }
  await checkAssignee(ctx, actor, input.assigneeId, audit);
  const holdings = await describeHoldings(ctx, actor.workspaceId, input.customerId);
  if (!holdings.exists) {
    await recordAudit(ctx, actor, {
      action: 'task.create',
      customerId: input.customerId,
      purpose: input.purpose,
      outcome: 'denied',
      reason: 'not_found',
    });
    throw new DomainError('not_found', 'No such customer.');
  }
  // A first, non-authoritative check, so that no key is made for a task refused anyway.
  const agreed = (
    await ctx.data.read(actor.workspaceId, (db) =>
      activeAgreementsOf(db, actor.workspaceId, [input.customerId], now),
    )
  ).get(input.customerId);
  if (agreed?.get(input.purpose) === undefined) {
    await recordAudit(ctx, actor, {
      action: 'task.create',
      customerId: input.customerId,
      purpose: input.purpose,
      outcome: 'denied',
      reason: 'purpose_not_active',
    });
    throw new DomainError(
      'consent_not_active',
      'The customer has no active agreement for this purpose.',
      { fields: ['body.purpose'] },
    );
  }
  const id = newId();
  // Sealed first (the key store is another store); the task is then written in one transaction
  // with its checks, under the customer's lock, so a racing erasure either comes first (and the
  // task is refused) or finds the task and deletes it.
  const sealed = await sealSubjectFields(ctx, actor.workspaceId, input.customerId, 'tasks', {
    [`title:${id}`]: input.title,
  });
  const row: TaskTable = {
    workspace_id: actor.workspaceId,
    id,
    customer_id: input.customerId,
    purpose_key: input.purpose,
    title_sealed: sealed[`title:${id}`] ?? Buffer.alloc(0),
    assignee_id: input.assigneeId,
    created_by: actor.id,
    created_at: now.toISOString(),
    due_at: dueAt,
    status: 'open',
    closed_at: null,
  };
  const decision = await ctx.data.batch.run(actor.workspaceId, async (scope) => {
    const exists = await lockCustomer(ctx, scope.trx, actor.workspaceId, input.customerId);
    const active = exists
      ? (await activeAgreementsOf(scope.trx, actor.workspaceId, [input.customerId], now)).get(
          input.customerId,
        )
      : undefined;
    const reason = !exists
      ? 'not_found'
      : active?.get(input.purpose) === undefined
        ? 'purpose_not_active'
        : null;
    if (reason === null) await store.insertTask(scope.trx, row);
    await appendAudit(ctx, scope, actor, {
      action: 'task.create',
      customerId: input.customerId,
      purpose: input.purpose,
      fields: [`task:${id}`, `assignee:${input.assigneeId}`],
      outcome: reason === null ? 'done' : 'denied',
      reason,
    });
    return reason;
  });
  if (decision === 'not_found') {
    // Erased meanwhile: the key just made for the title must not outlive the customer.
    await destroyCustomerKeys(ctx, actor.workspaceId, input.customerId);
    throw new DomainError('not_found', 'No such customer.');
  }
  if (decision !== null) {
    throw new DomainError(
      'consent_not_active',
      'The customer has no active agreement for this purpose; no task can be opened for it.',
      { fields: ['body.purpose'] },
    );
  }
  return toTask(ctx, row);
}

/** Tasks assigned to the actor (all of the workspace's for a privacy officer). Audited. */
export async function listTasks(ctx: AppContext, actor: Actor): Promise<Task[]> {
  const rows = await ctx.data.read(actor.workspaceId, (db) =>
    store.listTasks(db, actor.workspaceId, actor.role === 'privacy_officer' ? undefined : actor.id),
  );
  await recordAudit(ctx, actor, {
    action: 'task.list',
    fields: rows.map((r) => `task:${r.id}`),
    outcome: 'allowed',
  });
  return Promise.all(rows.map((r) => toTask(ctx, r)));
}

async function changeTask(
  ctx: AppContext,
  actor: Actor,
  id: string,
  action: 'task.reassign' | 'task.close',
  change: (row: TaskTable) => Partial<TaskTable>,
): Promise<Task> {
  const updated = await ctx.data.batch.run(actor.workspaceId, async (scope) => {
    const row = await store.findTask(scope.trx, actor.workspaceId, id);
    // Only the assignee, the creator or a privacy officer may change a task.
    const mayChange =
      row !== undefined &&
      (row.assignee_id === actor.id ||
        row.created_by === actor.id ||
        actor.role === 'privacy_officer');
    if (row === undefined || !mayChange || row.status !== 'open') {
      await appendAudit(ctx, scope, actor, {
        action,
        fields: [`task:${id}`],
        outcome: 'denied',
        reason: row === undefined || !mayChange ? 'not_found' : 'closed',
      });
      return row === undefined || !mayChange ? 'not_found' : 'closed';
    }
    const changes = change(row);
    await store.updateTask(scope.trx, actor.workspaceId, id, changes);
    await appendAudit(ctx, scope, actor, {
      action,
      customerId: row.customer_id,
      purpose: row.purpose_key,
      fields: [
        `task:${id}`,
        ...(changes.assignee_id === undefined ? [] : [`assignee:${changes.assignee_id}`]),
      ],
      outcome: 'done',
    });
    return { ...row, ...changes };
  });
  if (updated === 'not_found') throw new DomainError('not_found', 'No such task.');
  if (updated === 'closed') throw new DomainError('conflict', 'The task is closed.');
  return toTask(ctx, updated);
}

export async function reassignTask(
  ctx: AppContext,
  actor: Actor,
  id: string,
  assigneeId: string,
): Promise<Task> {
  await checkAssignee(ctx, actor, assigneeId, {
    action: 'task.reassign',
    fields: [`task:${id}`],
    outcome: 'denied',
  });
  return changeTask(ctx, actor, id, 'task.reassign', () => ({ assignee_id: assigneeId }));
}

export async function closeTask(ctx: AppContext, actor: Actor, id: string): Promise<Task> {
  const at = ctx.clock.now().toISOString();
  return changeTask(ctx, actor, id, 'task.close', () => ({ status: 'closed', closed_at: at }));
}

/**
 * The grant check of the gateway, inside its transaction: is `taskId` an open task, not yet
 * due, assigned to this staff member, for this customer and this purpose?
 */
export async function hasTaskGrant(
  trx: Kysely<DataDb>,
  grant: {
    readonly workspaceId: string;
    readonly staffId: string;
    readonly customerId: string;
    readonly purpose: string;
    readonly taskId: string;
    readonly now: Date;
  },
): Promise<boolean> {
  const row = await store.findTask(trx, grant.workspaceId, grant.taskId);
  return (
    row !== undefined &&
    row.status === 'open' &&
    row.due_at > grant.now.toISOString() &&
    row.assignee_id === grant.staffId &&
    row.customer_id === grant.customerId &&
    row.purpose_key === grant.purpose
  );
}

/** The customers for whom this staff member holds an open task that is not yet due. */
export async function customersWithOpenTasks(
  trx: Kysely<DataDb>,
  holder: { readonly workspaceId: string; readonly staffId: string; readonly now: Date },
): Promise<Set<string>> {
  return new Set(
    await store.openTaskCustomers(
      trx,
      holder.workspaceId,
      holder.staffId,
      holder.now.toISOString(),
    ),
  );
}

/** Removes a customer's tasks; part of erasure (their titles' key is destroyed with it). */
export async function deleteTasksOf(
  trx: Kysely<DataDb>,
  workspaceId: string,
  customerId: string,
): Promise<void> {
  await store.deleteTasksOf(trx, workspaceId, customerId);
}
