import type { Kysely } from 'kysely';
import type { DataDb } from '../../platform/db/schema.js';
import { newId } from '../../platform/ids.js';
import * as store from './consent.store.js';

export const consentMethods = [
  'web_form',
  'portal',
  'staff_recorded',
  'paper',
  'phone',
  'import',
] as const;
export type ConsentMethod = (typeof consentMethods)[number];

export interface ConsentGrant {
  readonly purpose: string;
  readonly noticeVersion: string;
  readonly method: ConsentMethod;
}

/** Appends `granted` events; the ledger is append-only and current state is derived from it. */
export async function recordGrants(
  db: Kysely<DataDb>,
  workspaceId: string,
  customerId: string,
  grants: readonly ConsentGrant[],
  at: string,
): Promise<void> {
  await store.insertEvents(
    db,
    grants.map((g) => ({
      workspace_id: workspaceId,
      id: newId(),
      customer_id: customerId,
      purpose_key: g.purpose,
      notice_version: g.noticeVersion,
      method: g.method,
      event: 'granted',
      at,
    })),
  );
}

/** Purposes whose latest event is a grant, per customer. */
export async function activePurposesOf(
  db: Kysely<DataDb>,
  workspaceId: string,
  customerIds: readonly string[],
): Promise<Map<string, Set<string>>> {
  const latest = new Map<string, Map<string, string>>();
  for (const e of await store.listEvents(db, workspaceId, customerIds)) {
    let perCustomer = latest.get(e.customer_id);
    if (perCustomer === undefined)
      latest.set(e.customer_id, (perCustomer = new Map<string, string>()));
    perCustomer.set(e.purpose_key, e.event);
  }
  const result = new Map<string, Set<string>>();
  for (const id of customerIds) {
    const events = latest.get(id) ?? new Map<string, string>();
    result.set(id, new Set([...events].filter(([, ev]) => ev === 'granted').map(([p]) => p)));
  }
  return result;
}

/** Removes a customer's consent events; part of erasure. */
export async function deleteConsentsOf(
  db: Kysely<DataDb>,
  workspaceId: string,
  customerId: string,
): Promise<void> {
  await store.deleteEvents(db, workspaceId, customerId);
}
