import type { AppContext } from '../../platform/context.js';
import { sweepAgreements } from './agreements.service.js';

/** Another periodic job run after the expiry job, in the same timer (housekeeping). */
export interface PeriodicJob {
  readonly name: string;
  run(): Promise<void>;
}

/**
 * Runs the expiry job in this process every `expirySweepSeconds` (never two runs at once), then
 * each of `also`; a job that fails is logged and runs again next time. Several processes may
 * run it against one PostgreSQL database: each grant ends once. Answers a function that stops
 * it and waits for a run under way.
 */
export function startExpirySweep(
  ctx: AppContext,
  also: readonly PeriodicJob[] = [],
): () => Promise<void> {
  const everyMs = ctx.config.expirySweepSeconds * 1000;
  if (everyMs === 0) return () => Promise.resolve();
  let stopped = false;
  let running: Promise<void> = Promise.resolve();
  let timer: NodeJS.Timeout | undefined;
  const tick = () => {
    running = sweepAgreements(ctx)
      .then(({ ended }) => {
        if (ended > 0) ctx.logger.info({ ended }, 'ended lapsed agreements');
      })
      .catch((error: unknown) => {
        ctx.logger.error({ err: error }, 'expiry sweep failed; it runs again later');
      })
      .then(async () => {
        for (const job of also) {
          await job.run().catch((error: unknown) => {
            ctx.logger.error({ err: error, job: job.name }, 'periodic job failed; it runs again');
          });
        }
      })
      .finally(() => {
        if (!stopped) timer = setTimeout(tick, everyMs);
      });
  };
  timer = setTimeout(tick, everyMs);
  return async () => {
    stopped = true;
    clearTimeout(timer);
    await running;
  };
}
