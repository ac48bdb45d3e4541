import type { AppContext } from '../../platform/context.js';
import { EVERY_WORKSPACE } from '../../platform/db/row-scope.js';
import { DomainError } from '../../platform/errors.js';
import { newId, type WorkspaceId } from '../../platform/ids.js';

export const DEFAULT_WORKSPACE = 'default';

/** Returns the workspace's id, creating the workspace when asked to. */
export async function ensureWorkspace(
  ctx: Pick<AppContext, 'data' | 'clock'>,
  name: string,
): Promise<{ id: WorkspaceId; created: boolean }> {
  const existing = await findWorkspaceByName(ctx, name);
  if (existing !== undefined) return { id: existing, created: false };
  const id = newId<WorkspaceId>();
  await ctx.data.batch.run(id, async ({ trx }) => {
    await trx
      .insertInto('workspace')
      .values({ id, name, created_at: ctx.clock.now().toISOString() })
      .execute();
  });
  return { id, created: true };
}

export async function findWorkspaceByName(
  ctx: Pick<AppContext, 'data'>,
  name: string,
): Promise<WorkspaceId | undefined> {
  // Found by name before its id is known.
  const row = await ctx.data.read(EVERY_WORKSPACE, (db) =>
    db.selectFrom('workspace').select('id').where('name', '=', name).executeTakeFirst(),
  );
  return row?.id as WorkspaceId | undefined;
}

export async function getWorkspaceByName(
  ctx: Pick<AppContext, 'data'>,
  name: string,
): Promise<WorkspaceId> {
  const id = await findWorkspaceByName(ctx, name);
  if (id === undefined) throw new DomainError('not_found', 'No such workspace.');
  return id;
}

export async function listWorkspaceIds(ctx: Pick<AppContext, 'data'>): Promise<WorkspaceId[]> {
  const rows = await ctx.data.read(EVERY_WORKSPACE, (db) =>
    db.selectFrom('workspace').select('id').orderBy('id').execute(),
  );
  return rows.map((r) => r.id as WorkspaceId);
}
