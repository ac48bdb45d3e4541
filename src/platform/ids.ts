import { secureRandom } from './crypto/index.js';

declare const brand: unique symbol;
export type Brand<T, B extends string> = T & { readonly [brand]: B };

export type WorkspaceId = Brand<string, 'WorkspaceId'>;
export type CustomerId = Brand<string, 'CustomerId'>;
export type TokenId = Brand<string, 'TokenId'>;
export type DataKeyId = Brand<string, 'DataKeyId'>;
export type ErasureId = Brand<string, 'ErasureId'>;
export type PurposeId = Brand<string, 'PurposeId'>;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export function isUuid(value: string): boolean {
  return UUID.test(value);
}

let lastMs = 0;
let counter = 0;

/** UUIDv7 (RFC 9562): time-ordered, so keys stay local in B-trees; 74 random bits. */
// eslint-disable-next-line @typescript-eslint/no-unnecessary-type-parameters -- the caller names the brand
export function newId<T extends string = string>(nowMs: number = Date.now()): T {
  // Monotonic within a process: the 12-bit rand_a field counts within one millisecond.
  if (nowMs <= lastMs) {
    counter += 1;
    if (counter > 0xfff) {
      lastMs += 1;
      counter = 0;
    }
  } else {
    lastMs = nowMs;
    counter = 0;
  }
  const bytes = secureRandom(16);
  const ms = lastMs;
  bytes[0] = Math.floor(ms / 2 ** 40) & 0xff;
  bytes[1] = Math.floor(ms / 2 ** 32) & 0xff;
  bytes[2] = (ms >>> 24) & 0xff;
  bytes[3] = (ms >>> 16) & 0xff;
  bytes[4] = (ms >>> 8) & 0xff;
  bytes[5] = ms & 0xff;
  bytes[6] = 0x70 | ((counter >>> 8) & 0x0f);
  bytes[7] = counter & 0xff;
  bytes[8] = ((bytes[8] ?? 0) & 0x3f) | 0x80;
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}` as T;
}
