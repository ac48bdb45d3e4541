import { hkdf, hmacSha256 } from './primitives.js';

/**
 * Exact-match lookup without plaintext: HMAC-SHA256 of the normalised value under a key
 * derived per workspace and field from the index root (which is not a KEK).
 */
export class BlindIndexer {
  readonly #root: Buffer;
  readonly #keys = new Map<string, Buffer>();

  constructor(root: Buffer) {
    this.#root = root;
  }

  digest(workspaceId: string, field: string, normalisedValue: string): string {
    const id = `${workspaceId}\u0000${field}`;
    let key = this.#keys.get(id);
    if (key === undefined) {
      key = hkdf(this.#root, workspaceId, `custodia/blind-index/v1/${field}`);
      this.#keys.set(id, key);
    }
    return hmacSha256(key, normalisedValue).toString('hex');
  }
}
