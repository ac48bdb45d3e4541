/**
 * Unwrapped data keys, kept briefly in this process's memory so that a read does not pay a
 * KEK unwrap per category. Bounded in size and age; keys are zeroed when they leave, and a
 * customer's keys leave at once when they are destroyed. Persisted copies are untouched by
 * this cache: crypto-shredding concerns the key store, which holds wrapped keys only.
 */
export class DataKeyCache {
  readonly #entries = new Map<string, { key: Buffer; customerId: string; expiresAt: number }>();
  /**
   * Customers (or single keys) whose keys were destroyed: a read racing the destruction cannot
   * re-cache them. Customer and key ids are both random UUIDs, so one set holds both.
   */
  readonly #destroyed = new Set<string>();
  readonly #maxEntries: number;
  readonly #ttlMs: number;

  constructor(maxEntries = 10_000, ttlMs = 60_000) {
    this.#maxEntries = maxEntries;
    this.#ttlMs = ttlMs;
  }

  get(keyId: string, now = Date.now()): Buffer | undefined {
    const entry = this.#entries.get(keyId);
    if (entry === undefined) return undefined;
    if (entry.expiresAt <= now) {
      this.#drop(keyId);
      return undefined;
    }
    // A copy: the cached buffer is zeroed when it leaves, which must not reach a caller still
    // using its key (an update seals after awaiting the key store).
    return Buffer.from(entry.key);
  }

  set(keyId: string, customerId: string, key: Buffer, now = Date.now()): void {
    if (this.#destroyed.has(customerId) || this.#destroyed.has(keyId)) return;
    if (this.#entries.has(keyId)) this.#drop(keyId);
    while (this.#entries.size >= this.#maxEntries) {
      const oldest = this.#entries.keys().next();
      if (oldest.done === true) break;
      this.#drop(oldest.value);
    }
    this.#entries.set(keyId, { key: Buffer.from(key), customerId, expiresAt: now + this.#ttlMs });
  }

  forgetCustomer(customerId: string): void {
    if (this.#destroyed.size >= 100_000) this.#destroyed.clear();
    this.#destroyed.add(customerId);
    for (const [id, entry] of this.#entries) if (entry.customerId === customerId) this.#drop(id);
  }

  /** Some of a customer's keys were destroyed: they leave, and cannot come back. */
  forgetKeys(keyIds: readonly string[]): void {
    if (this.#destroyed.size >= 100_000) this.#destroyed.clear();
    for (const id of keyIds) {
      this.#destroyed.add(id);
      this.#drop(id);
    }
  }

  forgetAll(): void {
    for (const id of [...this.#entries.keys()]) this.#drop(id);
  }

  get size(): number {
    return this.#entries.size;
  }

  #drop(keyId: string): void {
    this.#entries.get(keyId)?.key.fill(0);
    this.#entries.delete(keyId);
  }
}
