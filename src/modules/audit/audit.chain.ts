import { sha256Hex } from '../../platform/crypto/index.js';

/** The chain's first entry links to this. */
export const GENESIS_HASH = '0'.repeat(64);

/** The hashed content of an entry: ids, names and outcomes, never personal values. */
export interface ChainedEntry {
  readonly workspaceId: string;
  readonly seq: number;
  readonly at: string;
  readonly actorType: string;
  readonly actorId: string;
  readonly actorRole: string | null;
  readonly action: string;
  readonly customerId: string | null;
  readonly purpose: string | null;
  readonly fields: readonly string[];
  readonly outcome: string;
  readonly reason: string | null;
  readonly requestId: string | null;
}

/** Canonical encoding: a JSON array in a fixed order, so the same entry always hashes alike. */
export function canonicalEntry(e: ChainedEntry): string {
  return JSON.stringify([
    1,
    e.workspaceId,
    e.seq,
    e.at,
    e.actorType,
    e.actorId,
    e.actorRole,
    e.action,
    e.customerId,
    e.purpose,
    e.fields,
    e.outcome,
    e.reason,
    e.requestId,
  ]);
}

export function entryHash(prevHash: string, entry: ChainedEntry): string {
  return sha256Hex(`${prevHash}\n${canonicalEntry(entry)}`);
}

export function checkpointMessage(
  workspaceId: string,
  seq: number,
  hash: string,
  at: string,
): string {
  return `custodia-audit-checkpoint/v1\n${workspaceId}\n${seq}\n${hash}\n${at}`;
}
