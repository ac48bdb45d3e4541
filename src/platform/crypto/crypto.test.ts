import { chmod, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DomainError } from '../errors.js';
import { BlindIndexer } from './blind-index.js';
import { openField, sealField, type FieldBinding } from './envelope.js';
import {
  EnvKeyProvider,
  FileKeyProvider,
  openKeyProvider,
  type DataKeyBinding,
  type KeyProvider,
} from './keyring.js';
import { NONCE_BYTES, randomKey, TAG_BYTES } from './primitives.js';
import { Signer, verifySignature } from './signing.js';

const GENERIC_MESSAGE = 'Stored data could not be decrypted.';

/** Runs fn and returns what it threw (failing the test if it did not throw). */
function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  expect.fail('expected the call to throw');
}

async function rejected(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  expect.fail('expected the promise to reject');
}

function expectDecryptionFailed(error: unknown): void {
  expect(error).toBeInstanceOf(DomainError);
  const e = error as DomainError;
  expect(e.code).toBe('decryption_failed');
  expect(e.message).toBe(GENERIC_MESSAGE);
  expect(e.details).toBeUndefined();
}

const binding: FieldBinding = {
  workspaceId: '0190f000-0000-7000-8000-000000000001',
  customerId: '0190f000-0000-7000-8000-0000000000c1',
  category: 'contact',
  field: 'email',
  keyId: '0190f000-0000-7000-8000-0000000000k1',
};

const dekBinding: DataKeyBinding = {
  workspaceId: binding.workspaceId,
  customerId: binding.customerId,
  category: binding.category,
  keyId: binding.keyId,
};

describe('field envelope', () => {
  const key = randomKey();

  it('round-trips any unicode text, including the empty string', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 200 }), (text) => {
        const envelope = sealField(key, text, binding);
        expect(envelope.length).toBe(1 + NONCE_BYTES + Buffer.byteLength(text) + TAG_BYTES);
        expect(openField(key, envelope, binding)).toBe(text);
      }),
    );
    for (const text of ['', 'Lucía Martín', 'Ñandú 😀 ẞ 中文 עברית', '\u0000nul\u0000']) {
      expect(openField(key, sealField(key, text, binding), binding)).toBe(text);
    }
  });

  it('opens an envelope given as a Uint8Array view into a larger buffer', () => {
    const envelope = sealField(key, 'hola', binding);
    const backing = new Uint8Array(envelope.length + 10);
    backing.set(envelope, 5);
    expect(openField(key, backing.subarray(5, 5 + envelope.length), binding)).toBe('hola');
  });

  it('does not contain the plaintext and never produces the same envelope twice', () => {
    const canary = 'canary-plaintext-4711';
    const a = sealField(key, canary, binding);
    const b = sealField(key, canary, binding);
    expect(a.includes(Buffer.from(canary))).toBe(false);
    expect(a.equals(b)).toBe(false);
    expect(a[0]).toBe(0x01);
  });

  it('fails with the one generic error when any single byte is changed', () => {
    const envelope = sealField(key, 'lucia@example.org', binding);
    // Every position: version byte 0, nonce 1..12, body, tag (last 16); several flips at each.
    expect(envelope.length).toBe(1 + NONCE_BYTES + 17 + TAG_BYTES);
    for (let pos = 0; pos < envelope.length; pos += 1) {
      for (const mask of [0x01, 0x80, 0xff]) {
        const tampered = Buffer.from(envelope);
        tampered[pos]! ^= mask;
        expectDecryptionFailed(thrown(() => openField(key, tampered, binding)));
      }
    }
    // The original still opens: the failures above came from the changes.
    expect(openField(key, envelope, binding)).toBe('lucia@example.org');
  });

  it('fails with the generic error when truncated, extended or empty', () => {
    const envelope = sealField(key, 'short', binding);
    for (let len = 0; len < envelope.length; len += 1) {
      expectDecryptionFailed(thrown(() => openField(key, envelope.subarray(0, len), binding)));
    }
    const extended = Buffer.concat([envelope, Buffer.of(0)]);
    expectDecryptionFailed(thrown(() => openField(key, extended, binding)));
    const versionTwo = Buffer.from(envelope);
    versionTwo[0] = 0x02;
    expectDecryptionFailed(thrown(() => openField(key, versionTwo, binding)));
  });

  it('fails under another binding: customer, field, category, workspace or key id', () => {
    const envelope = sealField(key, 'Lucía', binding);
    const others: FieldBinding[] = [
      { ...binding, customerId: '0190f000-0000-7000-8000-0000000000c2' },
      { ...binding, field: 'phone' },
      { ...binding, category: 'identity' },
      { ...binding, workspaceId: '0190f000-0000-7000-8000-000000000002' },
      { ...binding, keyId: '0190f000-0000-7000-8000-0000000000k2' },
    ];
    for (const other of others) {
      expectDecryptionFailed(thrown(() => openField(key, envelope, other)));
    }
    expect(openField(key, envelope, { ...binding })).toBe('Lucía');
  });

  it('fails under any binding that differs in one component (property)', () => {
    const component = fc.constantFrom<keyof FieldBinding>(
      'workspaceId',
      'customerId',
      'category',
      'field',
      'keyId',
    );
    const value = fc.string({ minLength: 1, maxLength: 40 }).filter((s) => !s.includes('\u0000'));
    fc.assert(
      fc.property(component, value, (name, replacement) => {
        fc.pre(binding[name] !== replacement);
        const envelope = sealField(key, 'x', binding);
        expectDecryptionFailed(
          thrown(() => openField(key, envelope, { ...binding, [name]: replacement })),
        );
      }),
      { numRuns: 200 },
    );
  });

  it('fails with the wrong key or a key of the wrong length', () => {
    const envelope = sealField(key, 'secret', binding);
    expectDecryptionFailed(thrown(() => openField(randomKey(), envelope, binding)));
    expectDecryptionFailed(thrown(() => openField(key.subarray(0, 16), envelope, binding)));
    expectDecryptionFailed(thrown(() => openField(Buffer.alloc(0), envelope, binding)));
    expectDecryptionFailed(thrown(() => sealField(key.subarray(0, 31), 'x', binding)));
  });

  it('never repeats a nonce over 100,000 encryptions', () => {
    const nonces = new Set<string>();
    const count = 100_000;
    for (let i = 0; i < count; i += 1) {
      const envelope = sealField(key, 'x', binding);
      nonces.add(envelope.toString('latin1', 1, 1 + NONCE_BYTES));
    }
    expect(nonces.size).toBe(count);
  });
});

describe('FileKeyProvider', () => {
  let dir: string;
  let file: string;
  const now = new Date('2026-01-15T09:00:00.000Z');

  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'custodia-crypto-'));
    file = path.join(dir, 'keys', 'keyring.json');
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('creates a keyring readable by its owner only, in an owner-only directory', async () => {
    const provider = await FileKeyProvider.openOrCreate(file, now);
    expect(provider.kind).toBe('file');
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect((await stat(path.dirname(file))).mode & 0o777).toBe(0o700);
    expect(provider.currentKekVersion()).toBe(1);
    expect(provider.listKeks()).toEqual([
      { version: 1, createdAt: now.toISOString(), retiredAt: null },
    ]);
    expect(provider.indexRoot().length).toBe(32);
    expect(provider.signingRoot().length).toBe(32);
    expect(provider.indexRoot().equals(provider.signingRoot())).toBe(false);
  });

  it('reopens the same keys: a data key wrapped before unwraps after', async () => {
    const first = await FileKeyProvider.openOrCreate(file, now);
    const dek = randomKey();
    const { kekVersion, wrapped } = first.wrapDataKey(dek, dekBinding);
    expect(kekVersion).toBe(1);
    expect(wrapped.includes(dek)).toBe(false);

    for (const reopened of [
      await FileKeyProvider.openOrCreate(file, new Date()),
      await FileKeyProvider.open(file),
    ]) {
      expect(reopened.unwrapDataKey(wrapped, kekVersion, dekBinding).equals(dek)).toBe(true);
      expect(reopened.indexRoot().equals(first.indexRoot())).toBe(true);
      expect(reopened.signingRoot().equals(first.signingRoot())).toBe(true);
      expect(reopened.listKeks()).toEqual(first.listKeks());
    }
  });

  it('two keyrings do not open each other’s data keys', async () => {
    const a = await FileKeyProvider.openOrCreate(file, now);
    const b = await FileKeyProvider.openOrCreate(path.join(dir, 'other.json'), now);
    const { kekVersion, wrapped } = a.wrapDataKey(randomKey(), dekBinding);
    expectDecryptionFailed(thrown(() => b.unwrapDataKey(wrapped, kekVersion, dekBinding)));
  });

  it('refuses a keyring file that others can read (mode 0644)', async () => {
    await FileKeyProvider.openOrCreate(file, now);
    const content = await readFile(file, 'utf8');
    await chmod(file, 0o644);
    for (const attempt of [FileKeyProvider.open(file), FileKeyProvider.openOrCreate(file, now)]) {
      const error = await rejected(attempt);
      expect(error).toBeInstanceOf(DomainError);
      expect((error as DomainError).code).toBe('invalid_config');
      const { indexKey } = JSON.parse(content) as { indexKey: string };
      expect((error as DomainError).message).not.toContain(indexKey);
    }
    // The refused keyring was left as it was, not replaced by a new one.
    expect(await readFile(file, 'utf8')).toBe(content);
  });

  it('refuses a malformed keyring file', async () => {
    const good = JSON.parse(
      await readFile((await FileKeyProvider.openOrCreate(file, now)).filePath, 'utf8'),
    ) as Record<string, unknown>;
    const shortKey = Buffer.alloc(16, 1).toString('base64');
    const variants: string[] = [
      '',
      'not json',
      '{}',
      '[]',
      JSON.stringify({ ...good, format: 'custodia-keyring/2' }),
      JSON.stringify({ ...good, keks: [] }),
      JSON.stringify({ ...good, indexKey: shortKey }),
      JSON.stringify({ ...good, signingKey: 'not base64 at all' }),
      JSON.stringify({
        ...good,
        keks: [{ version: 1, key: shortKey, createdAt: now.toISOString(), retiredAt: null }],
      }),
      JSON.stringify({ ...good, extra: true }),
    ];
    for (const [i, text] of variants.entries()) {
      const bad = path.join(dir, `bad-${i}.json`);
      await writeFile(bad, text, { mode: 0o600 });
      const error = await rejected(FileKeyProvider.open(bad));
      expect(error, `variant ${i}`).toBeInstanceOf(DomainError);
      expect((error as DomainError).code, `variant ${i}`).toBe('invalid_config');
      // openOrCreate must not replace an unreadable keyring with a fresh one.
      expect(await rejected(FileKeyProvider.openOrCreate(bad, now))).toBeInstanceOf(DomainError);
      expect(await readFile(bad, 'utf8')).toBe(text);
    }
  });

  it('rotation adds a current version; keys wrapped under the old one still unwrap', async () => {
    const provider = await FileKeyProvider.openOrCreate(file, now);
    const dek1 = randomKey();
    const old = provider.wrapDataKey(dek1, dekBinding);
    expect(await provider.addKekVersion()).toBe(2);
    expect(provider.currentKekVersion()).toBe(2);
    expect(provider.listKeks().map((k) => k.version)).toEqual([1, 2]);
    expect((await stat(file)).mode & 0o777).toBe(0o600);

    const dek2 = randomKey();
    const fresh = provider.wrapDataKey(dek2, dekBinding);
    expect(fresh.kekVersion).toBe(2);
    expect(provider.unwrapDataKey(old.wrapped, 1, dekBinding).equals(dek1)).toBe(true);
    expect(provider.unwrapDataKey(fresh.wrapped, 2, dekBinding).equals(dek2)).toBe(true);
    // The version is part of what the wrapped key is bound to.
    expectDecryptionFailed(thrown(() => provider.unwrapDataKey(old.wrapped, 2, dekBinding)));
    expectDecryptionFailed(thrown(() => provider.unwrapDataKey(fresh.wrapped, 1, dekBinding)));

    const reopened = await FileKeyProvider.open(file);
    expect(reopened.currentKekVersion()).toBe(2);
    expect(reopened.unwrapDataKey(old.wrapped, 1, dekBinding).equals(dek1)).toBe(true);
    expect(reopened.unwrapDataKey(fresh.wrapped, 2, dekBinding).equals(dek2)).toBe(true);
    expect(reopened.indexRoot().equals(provider.indexRoot())).toBe(true);
  });

  it('refuses to retire the current version', async () => {
    const provider = await FileKeyProvider.openOrCreate(file, now);
    const { wrapped } = provider.wrapDataKey(randomKey(), dekBinding);
    const before = await readFile(file, 'utf8');
    const error = await rejected(provider.retireKekVersion(1));
    expect(error).toBeInstanceOf(DomainError);
    expect((error as DomainError).code).toBe('conflict');
    expect(provider.currentKekVersion()).toBe(1);
    expect(() => provider.unwrapDataKey(wrapped, 1, dekBinding)).not.toThrow();
    expect(await readFile(file, 'utf8')).toBe(before);

    await provider.addKekVersion();
    expect(await rejected(provider.retireKekVersion(2))).toBeInstanceOf(DomainError);
    expect(provider.currentKekVersion()).toBe(2);
  });

  it('retires an old version: its key is destroyed and unwrapping under it fails', async () => {
    const provider = await FileKeyProvider.openOrCreate(file, now);
    const old = provider.wrapDataKey(randomKey(), dekBinding);
    const oldKek = (JSON.parse(await readFile(file, 'utf8')) as { keks: { key: string }[] })
      .keks[0]!.key;
    await provider.addKekVersion();
    const dek2 = randomKey();
    const fresh = provider.wrapDataKey(dek2, dekBinding);

    await provider.retireKekVersion(1);
    expectDecryptionFailed(thrown(() => provider.unwrapDataKey(old.wrapped, 1, dekBinding)));
    expect(provider.listKeks().find((k) => k.version === 1)?.retiredAt).not.toBeNull();
    expect(provider.currentKekVersion()).toBe(2);
    expect(provider.unwrapDataKey(fresh.wrapped, 2, dekBinding).equals(dek2)).toBe(true);

    const text = await readFile(file, 'utf8');
    expect(text).not.toContain(oldKek);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    const reopened = await FileKeyProvider.open(file);
    expectDecryptionFailed(thrown(() => reopened.unwrapDataKey(old.wrapped, 1, dekBinding)));
    expect(reopened.unwrapDataKey(fresh.wrapped, 2, dekBinding).equals(dek2)).toBe(true);
    expect(await provider.addKekVersion()).toBe(3);
  });

  it('does not unwrap a data key under another binding or when tampered', async () => {
    const provider = await FileKeyProvider.openOrCreate(file, now);
    const dek = randomKey();
    const { kekVersion, wrapped } = provider.wrapDataKey(dek, dekBinding);
    const others: DataKeyBinding[] = [
      { ...dekBinding, customerId: '0190f000-0000-7000-8000-0000000000c2' },
      { ...dekBinding, category: 'identity' },
      { ...dekBinding, keyId: '0190f000-0000-7000-8000-0000000000k2' },
      { ...dekBinding, workspaceId: '0190f000-0000-7000-8000-000000000002' },
    ];
    for (const other of others) {
      expectDecryptionFailed(thrown(() => provider.unwrapDataKey(wrapped, kekVersion, other)));
    }
    for (const pos of [0, NONCE_BYTES, wrapped.length - 1]) {
      const tampered = Buffer.from(wrapped);
      tampered[pos]! ^= 0x01;
      expectDecryptionFailed(
        thrown(() => provider.unwrapDataKey(tampered, kekVersion, dekBinding)),
      );
    }
    expectDecryptionFailed(thrown(() => provider.unwrapDataKey(wrapped, 7, dekBinding)));
    expect(provider.unwrapDataKey(wrapped, kekVersion, dekBinding).equals(dek)).toBe(true);
  });
});

describe('EnvKeyProvider', () => {
  const k1 = randomKey().toString('base64');
  const k2 = randomKey().toString('base64');
  const k3 = randomKey().toString('base64');

  it('takes a single base64 key as version 1', () => {
    const provider = new EnvKeyProvider(k1);
    expect(provider.kind).toBe('env');
    expect(provider.currentKekVersion()).toBe(1);
    expect(provider.listKeks().map((k) => k.version)).toEqual([1]);
    const dek = randomKey();
    const { kekVersion, wrapped } = provider.wrapDataKey(dek, dekBinding);
    expect(kekVersion).toBe(1);
    // Another process given the same key opens it.
    expect(new EnvKeyProvider(k1).unwrapDataKey(wrapped, 1, dekBinding).equals(dek)).toBe(true);
    expectDecryptionFailed(
      thrown(() => new EnvKeyProvider(k2).unwrapDataKey(wrapped, 1, dekBinding)),
    );
  });

  it('takes a versioned list; the highest version is current and old keys still unwrap', () => {
    const before = new EnvKeyProvider(k1);
    const dek1 = randomKey();
    const old = before.wrapDataKey(dek1, dekBinding);

    const provider = new EnvKeyProvider(`1:${k1}, 3:${k3},2:${k2}`);
    expect(provider.currentKekVersion()).toBe(3);
    expect(provider.listKeks().map((k) => k.version)).toEqual([1, 2, 3]);
    expect(provider.unwrapDataKey(old.wrapped, 1, dekBinding).equals(dek1)).toBe(true);
    const dek3 = randomKey();
    const fresh = provider.wrapDataKey(dek3, dekBinding);
    expect(fresh.kekVersion).toBe(3);
    expect(provider.unwrapDataKey(fresh.wrapped, 3, dekBinding).equals(dek3)).toBe(true);
    expectDecryptionFailed(thrown(() => before.unwrapDataKey(fresh.wrapped, 3, dekBinding)));
  });

  it('keeps the index and signing roots when a version is added', () => {
    const before = new EnvKeyProvider(k1);
    const after = new EnvKeyProvider(`1:${k1},2:${k2}`);
    expect(after.indexRoot().equals(before.indexRoot())).toBe(true);
    expect(after.signingRoot().equals(before.signingRoot())).toBe(true);
    expect(new EnvKeyProvider(k2).indexRoot().equals(before.indexRoot())).toBe(false);
    expect(before.indexRoot().equals(before.signingRoot())).toBe(false);
  });

  it('keeps the index and signing roots whatever order the versions are listed in', () => {
    const before = new EnvKeyProvider(`1:${k1}`);
    const reordered = new EnvKeyProvider(`2:${k2},1:${k1}`);
    expect(reordered.currentKekVersion()).toBe(2);
    expect(reordered.indexRoot().equals(before.indexRoot())).toBe(true);
    expect(reordered.signingRoot().equals(before.signingRoot())).toBe(true);
  });

  it('refuses malformed specs and in-process rotation', async () => {
    for (const spec of [
      '',
      'not-base64!',
      Buffer.alloc(16).toString('base64'),
      `1:${k1},1:${k2}`,
    ]) {
      expect(() => new EnvKeyProvider(spec)).toThrow();
    }
    const provider: KeyProvider = new EnvKeyProvider(`1:${k1},2:${k2}`);
    expect(await rejected(provider.addKekVersion())).toBeInstanceOf(DomainError);
    expect(await rejected(provider.retireKekVersion(1))).toBeInstanceOf(DomainError);
    expect(provider.currentKekVersion()).toBe(2);
  });

  it('is chosen by openKeyProvider when a master key is configured', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'custodia-crypto-'));
    try {
      const keyringFile = path.join(dir, 'keyring.json');
      const env: KeyProvider = await openKeyProvider(
        { masterKey: k1, keyringFile },
        new Date(),
        true,
      );
      expect(env.kind).toBe('env');
      const file = await openKeyProvider({ masterKey: undefined, keyringFile }, new Date(), true);
      expect(file.kind).toBe('file');
      expect((await stat(keyringFile)).mode & 0o777).toBe(0o600);
      // Without create, a missing keyring is an error, not a new set of keys.
      const missing = path.join(dir, 'missing.json');
      const error = await rejected(
        openKeyProvider({ masterKey: undefined, keyringFile: missing }, new Date(), false),
      );
      expect((error as NodeJS.ErrnoException).code).toBe('ENOENT');
      expect(await rejected(stat(missing))).toBeInstanceOf(Error);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('BlindIndexer', () => {
  const root = randomKey();
  const ws1 = '0190f000-0000-7000-8000-000000000001';
  const ws2 = '0190f000-0000-7000-8000-000000000002';

  it('is deterministic per workspace, field and value, across instances', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 60 }), (value) => {
        const a = new BlindIndexer(root).digest(ws1, 'email', value);
        const b = new BlindIndexer(root);
        expect(b.digest(ws1, 'email', value)).toBe(a);
        expect(b.digest(ws1, 'email', value)).toBe(a);
      }),
    );
  });

  it('differs across workspaces, fields, values and roots', () => {
    const indexer = new BlindIndexer(root);
    const base = indexer.digest(ws1, 'email', 'lucia@example.org');
    expect(indexer.digest(ws2, 'email', 'lucia@example.org')).not.toBe(base);
    expect(indexer.digest(ws1, 'phone', 'lucia@example.org')).not.toBe(base);
    expect(indexer.digest(ws1, 'email', 'lucia@example.com')).not.toBe(base);
    expect(new BlindIndexer(randomKey()).digest(ws1, 'email', 'lucia@example.org')).not.toBe(base);
    fc.assert(
      fc.property(fc.string({ maxLength: 40 }), (value) => {
        const d = indexer.digest(ws1, 'email', value);
        expect(indexer.digest(ws2, 'email', value)).not.toBe(d);
        expect(indexer.digest(ws1, 'phone', value)).not.toBe(d);
      }),
    );
  });

  it('yields 64 hex characters that do not contain the value', () => {
    const indexer = new BlindIndexer(root);
    fc.assert(
      fc.property(fc.string({ minLength: 4, maxLength: 60 }), (value) => {
        const d = indexer.digest(ws1, 'email', value);
        expect(d).toMatch(/^[0-9a-f]{64}$/);
        expect(d).not.toContain(value);
        expect(d).not.toContain(Buffer.from(value).toString('hex'));
      }),
    );
  });
});

describe('Signer', () => {
  const root = randomKey();
  const ws1 = '0190f000-0000-7000-8000-000000000001';
  const ws2 = '0190f000-0000-7000-8000-000000000002';

  it('signs so that the workspace public key verifies', () => {
    const signer = new Signer(root);
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 200 }), (message) => {
        const signature = signer.sign(ws1, message);
        expect(verifySignature(signer.publicKey(ws1), message, signature)).toBe(true);
      }),
      { numRuns: 50 },
    );
    // Same root, same keys: a verifier can keep the published public key.
    expect(new Signer(root).publicKey(ws1)).toBe(signer.publicKey(ws1));
    expect(Buffer.from(signer.publicKey(ws1), 'base64').length).toBe(32);
  });

  it('does not verify under another workspace’s key, another root, or an altered message', () => {
    const signer = new Signer(root);
    const message = 'checkpoint:42:abcdef';
    const signature = signer.sign(ws1, message);
    expect(signer.publicKey(ws2)).not.toBe(signer.publicKey(ws1));
    expect(verifySignature(signer.publicKey(ws2), message, signature)).toBe(false);
    expect(verifySignature(new Signer(randomKey()).publicKey(ws1), message, signature)).toBe(false);
    expect(verifySignature(signer.publicKey(ws1), 'checkpoint:43:abcdef', signature)).toBe(false);
    expect(verifySignature(signer.publicKey(ws1), `${message} `, signature)).toBe(false);
    const sigBytes = Buffer.from(signature, 'base64');
    sigBytes[0]! ^= 0x01;
    expect(verifySignature(signer.publicKey(ws1), message, sigBytes.toString('base64'))).toBe(
      false,
    );
  });

  it('answers false, not an exception, for garbage keys and signatures', () => {
    const signer = new Signer(root);
    const signature = signer.sign(ws1, 'm');
    expect(verifySignature('', 'm', signature)).toBe(false);
    expect(verifySignature('not-a-key', 'm', signature)).toBe(false);
    expect(verifySignature(signer.publicKey(ws1), 'm', '')).toBe(false);
    expect(verifySignature(signer.publicKey(ws1), 'm', 'AAAA')).toBe(false);
  });
});
