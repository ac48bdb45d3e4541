/**
 * Tasks and the access grants they are: staff read a customer's personal data only through an
 * open task assigned to them, for that customer and one purpose, until it closes or falls due.
 */
export { customersWithOpenTasks, deleteTasksOf, hasTaskGrant, type Task } from './tasks.service.js';
export { taskRoutes } from './tasks.routes.js';
export {
  BREAK_GLASS_MINUTES,
  deleteBreakGlassOf,
  hasBreakGlassGrant,
  type BreakGlass,
} from './tasks.break-glass.js';
