/**
 * What the bench runner and its server processes agree on: the documented bench settings, the
 * command line of a server process, and the messages they exchange over the IPC channel.
 */

/** Log level of the Custodia server under test: warnings and errors only, as in production. */
export const BENCH_LOG_LEVEL = 'warn';

/**
 * Requests per minute the rate limiter allows, set far above what the load reaches so that the
 * limiter still runs on every request but never answers 429. It is the largest value the
 * configuration accepts (config.ts bounds it at 10,000,000).
 */
export const BENCH_RATE_LIMIT = '10000000';

/** The server processes: Custodia itself and the three baselines it is compared with. */
export const serverModes = ['custodia', 'bare', 'plain-commit', 'plain-group'] as const;
export type ServerMode = (typeof serverModes)[number];

export interface ServerArgs {
  readonly mode: ServerMode;
  /** A fresh directory for the stores (custodia, plain-*). */
  readonly dataDir?: string;
  /** The constant object the bare route answers with. */
  readonly body?: unknown;
}

/** Server to runner. */
export type ServerMessage =
  | { readonly type: 'ready'; readonly port: number; readonly token?: string }
  | { readonly type: 'profile-saved'; readonly file: string }
  /** CPU time the process has used so far, in microseconds (process.cpuUsage()). */
  | { readonly type: 'cpu'; readonly user: number; readonly system: number }
  /** process.memoryUsage(), in bytes. */
  | { readonly type: 'memory'; readonly usage: NodeJS.MemoryUsage }
  | { readonly type: 'failed'; readonly message: string };

/** Runner to server. */
export type RunnerMessage =
  | { readonly type: 'cpu' }
  | { readonly type: 'memory' }
  | { readonly type: 'profile-start' }
  | { readonly type: 'profile-stop'; readonly file: string }
  | { readonly type: 'stop' };

export function isServerMessage(value: unknown): value is ServerMessage {
  return typeof value === 'object' && value !== null && 'type' in value;
}

export function isRunnerMessage(value: unknown): value is RunnerMessage {
  return typeof value === 'object' && value !== null && 'type' in value;
}

/** Paths of the request shapes shared by Custodia and the baselines. */
export const CUSTOMERS_PATH = '/api/v1/customers';
export const READ_PURPOSE = 'loyalty_program';

/**
 * A creation body with consents, identity and contact fields; `n` makes the email unique.
 * The fields are the ones the loyalty programme purpose covers, so Custodia stores them all.
 */
export function creationBody(tag: string, n: number): string {
  return JSON.stringify({
    consents: [{ purpose: READ_PURPOSE, noticeVersion: '1', method: 'web_form' }],
    identity: { givenName: 'Lucía', familyName: 'Martín Ortega', birthDate: '1985-04-12' },
    contact: {
      email: `bench.${tag}.${n}@example.org`,
      phone: '612 345 678',
      postalAddress: {
        lines: ['Calle de Alcalá 42, 3º B'],
        locality: 'Madrid',
        postalCode: '28014',
        country: 'ES',
      },
    },
  });
}
