import { describe, expect, it } from 'vitest';
import { DataKeyCache } from './customers.key-cache.js';

describe('data key cache', () => {
  const key = (b: number) => Buffer.alloc(32, b);

  it('hands out copies until the entry expires, then forgets it; a copy handed out stays intact', () => {
    const cache = new DataKeyCache(10, 1_000);
    const original = key(7);
    cache.set('k1', 'c1', original, 0);
    original.fill(0);
    const held = cache.get('k1', 999);
    expect(held).toEqual(key(7));
    expect(cache.get('k1', 1_000)).toBeUndefined();
    expect(held).toEqual(key(7));
    expect(cache.size).toBe(0);
  });

  it('stays within its bound, dropping the oldest entries first', () => {
    const cache = new DataKeyCache(3, 60_000);
    for (let i = 0; i < 5; i += 1) cache.set(`k${i}`, `c${i}`, key(i), 0);
    expect(cache.size).toBe(3);
    expect(cache.get('k0', 1)).toBeUndefined();
    expect(cache.get('k1', 1)).toBeUndefined();
    expect(cache.get('k4', 1)).toEqual(key(4));
  });

  it('forgets every key of a customer at once, and everything on request', () => {
    const cache = new DataKeyCache(10, 60_000);
    cache.set('a1', 'alice', key(1), 0);
    cache.set('a2', 'alice', key(2), 0);
    cache.set('b1', 'bob', key(3), 0);
    cache.forgetCustomer('alice');
    expect(cache.get('a1', 1)).toBeUndefined();
    expect(cache.get('a2', 1)).toBeUndefined();
    expect(cache.get('b1', 1)).toEqual(key(3));
    // A read that raced the destruction cannot put an erased customer's key back.
    cache.set('a3', 'alice', key(4), 2);
    expect(cache.get('a3', 3)).toBeUndefined();
    cache.forgetAll();
    expect(cache.size).toBe(0);
  });
});
