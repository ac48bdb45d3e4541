import type { Clock } from './clock.js';
import type { Config } from './config.js';
import type { BlindIndexer, KeyProvider, Signer } from './crypto/index.js';
import type { DataDb, KeyDb } from './db/schema.js';
import type { Store } from './db/database.js';
import type { Logger } from './logger.js';

/** Everything a service needs, passed in; there is no global state. */
export interface AppContext {
  readonly config: Config;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly data: Store<DataDb>;
  readonly keys: Store<KeyDb>;
  readonly keyProvider: KeyProvider;
  readonly blindIndex: BlindIndexer;
  readonly signer: Signer;
}

export type ActorType = 'token' | 'staff' | 'customer' | 'system';

/** Who is acting, in which workspace, for which request. */
export interface Actor {
  readonly type: ActorType;
  readonly id: string;
  readonly role: string | null;
  readonly workspaceId: string;
  readonly requestId: string | null;
}

/** The system itself acting (a job, a resumed erasure, the operator's CLI) in a workspace. */
export function systemActor(id: string, workspaceId: string): Actor {
  return { type: 'system', id, role: null, workspaceId, requestId: null };
}
