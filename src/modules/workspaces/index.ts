/** Workspaces: every row of every store carries its workspace id. */
export {
  DEFAULT_WORKSPACE,
  ensureWorkspace,
  findWorkspaceByName,
  getWorkspaceByName,
  listWorkspaceIds,
} from './workspaces.service.js';
