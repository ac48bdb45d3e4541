import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FileKeyProvider, REFRESH_MS } from './keyring.js';

const dirs: string[] = [];
afterEach(async () => {
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Waits past the refresh interval, then polls (a loaded machine may run timers late). */
async function eventually(condition: () => boolean): Promise<void> {
  await wait(REFRESH_MS + 100);
  const deadline = Date.now() + 10 * REFRESH_MS;
  while (!condition() && Date.now() < deadline) await wait(50);
}
const binding = { workspaceId: 'w', customerId: 'c', category: 'identity', keyId: 'k' };

describe('a running process and keys rotate in another', () => {
  it('learns the new KEK version once the refresh interval has passed, and can unwrap keys rewrapped under it', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'custodia-keyring-'));
    dirs.push(dir);
    const file = path.join(dir, 'keyring.json');
    const server = await FileKeyProvider.openOrCreate(file, new Date());
    const cli = await FileKeyProvider.open(file);
    const dataKey = Buffer.alloc(32, 9);
    expect(server.currentKekVersion()).toBe(1);

    await cli.addKekVersion();
    const rewrapped = cli.wrapDataKey(dataKey, binding);
    expect(rewrapped.kekVersion).toBe(2);

    await eventually(() => server.currentKekVersion() === 2);
    // The server now wraps under version 2 and opens what the CLI rewrapped.
    expect(server.currentKekVersion()).toBe(2);
    expect(server.unwrapDataKey(rewrapped.wrapped, 2, binding)).toEqual(dataKey);
    expect(server.wrapDataKey(dataKey, binding).kekVersion).toBe(2);

    await cli.retireKekVersion(1);
    await eventually(() => server.listKeks().find((k) => k.version === 1)?.retiredAt != null);
    expect(server.listKeks().find((k) => k.version === 1)?.retiredAt).not.toBeNull();
  });
});
