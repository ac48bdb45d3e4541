import type { AppContext } from '../../platform/context.js';
import type { RouteDefinition } from '../../platform/http/route.js';

export function subjectRequestRoutes(_ctx: AppContext): RouteDefinition[] {
  return [];
}
