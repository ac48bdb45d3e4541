import { promises as fs, constants as fsConstants, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { parseMasterKeys } from '../config.js';
import { DomainError } from '../errors.js';
import { aesGcmOpen, aesGcmSeal, hkdf, randomKey } from './primitives.js';

/** What a data key is bound to when it is wrapped. */
export interface DataKeyBinding {
  readonly workspaceId: string;
  readonly customerId: string;
  readonly category: string;
  readonly keyId: string;
}

export interface KekInfo {
  readonly version: number;
  readonly createdAt: string;
  readonly retiredAt: string | null;
}

/**
 * Holds the key-encryption keys (KEKs) and the roots of the blind-index and signing keys.
 * The KEKs never leave the provider: it wraps and unwraps data keys, so an external KMS
 * (OpenBao/Vault Transit, a cloud KMS) can implement the same interface.
 */
export interface KeyProvider {
  readonly kind: 'file' | 'env';
  currentKekVersion(): number;
  listKeks(): readonly KekInfo[];
  wrapDataKey(dataKey: Buffer, binding: DataKeyBinding): { kekVersion: number; wrapped: Buffer };
  unwrapDataKey(wrapped: Uint8Array, kekVersion: number, binding: DataKeyBinding): Buffer;
  /** Root of the blind-index keys; not a KEK and unchanged by rotation. */
  indexRoot(): Buffer;
  /** Root of the per-workspace Ed25519 signing keys. */
  signingRoot(): Buffer;
  /** Adds a new KEK version and makes it current. */
  addKekVersion(): Promise<number>;
  /** Removes a KEK that no data key uses any more. */
  retireKekVersion(version: number): Promise<void>;
}

/** How often a file keyring looks for changes made by another process. */
export const REFRESH_MS = 1_000;

function fileSignature(filePath: string): string {
  const stat = statSync(filePath);
  return `${stat.ino}:${stat.size}:${stat.mtimeMs}`;
}

function dataKeyAad(b: DataKeyBinding, kekVersion: number): Buffer {
  return Buffer.from(
    ['custodia/dek/v1', b.workspaceId, b.customerId, b.category, b.keyId, String(kekVersion)].join(
      '\u0000',
    ),
  );
}

function unwrapFailed(): DomainError {
  return new DomainError('decryption_failed', 'Stored data could not be decrypted.');
}

abstract class LocalKeyProvider implements KeyProvider {
  abstract readonly kind: 'file' | 'env';
  protected abstract keks(): ReadonlyMap<number, { key: Buffer; info: KekInfo }>;
  abstract indexRoot(): Buffer;
  abstract signingRoot(): Buffer;
  abstract addKekVersion(): Promise<number>;
  abstract retireKekVersion(version: number): Promise<void>;

  /** Called before every use, so a provider can pick up keys changed by another process. */
  protected refresh(): void {
    // Keys from the environment do not change while the process runs.
  }

  currentKekVersion(): number {
    this.refresh();
    let current = 0;
    for (const [version, k] of this.keks()) {
      if (k.info.retiredAt === null && version > current) current = version;
    }
    if (current === 0) throw new DomainError('internal_error', 'No active key-encryption key.');
    return current;
  }

  listKeks(): readonly KekInfo[] {
    return [...this.keks().values()].map((k) => k.info).sort((a, b) => a.version - b.version);
  }

  wrapDataKey(dataKey: Buffer, binding: DataKeyBinding): { kekVersion: number; wrapped: Buffer } {
    const kekVersion = this.currentKekVersion();
    const kek = this.keks().get(kekVersion);
    if (kek === undefined) throw unwrapFailed();
    return { kekVersion, wrapped: aesGcmSeal(kek.key, dataKey, dataKeyAad(binding, kekVersion)) };
  }

  unwrapDataKey(wrapped: Uint8Array, kekVersion: number, binding: DataKeyBinding): Buffer {
    this.refresh();
    const kek = this.keks().get(kekVersion);
    if (kek === undefined || kek.info.retiredAt !== null) throw unwrapFailed();
    const buf = Buffer.from(wrapped.buffer, wrapped.byteOffset, wrapped.byteLength);
    const key = aesGcmOpen(kek.key, buf, dataKeyAad(binding, kekVersion));
    if (key === undefined) throw unwrapFailed();
    return key;
  }
}

/** Keys given in the environment (CUSTODIA_MASTER_KEY); rotation means adding a version there. */
export class EnvKeyProvider extends LocalKeyProvider {
  readonly kind = 'env';
  readonly #keks: Map<number, { key: Buffer; info: KekInfo }>;
  readonly #index: Buffer;
  readonly #signing: Buffer;

  constructor(spec: string) {
    super();
    const masters = parseMasterKeys(spec);
    this.#keks = new Map();
    // The lowest version roots the blind-index and signing keys, whatever the order listed.
    const first = masters.get(Math.min(...masters.keys()));
    for (const [version, master] of masters) {
      this.#keks.set(version, {
        key: hkdf(master, 'custodia', 'kek'),
        info: { version, createdAt: '1970-01-01T00:00:00.000Z', retiredAt: null },
      });
    }
    if (first === undefined) throw new DomainError('invalid_config', 'No master key.');
    this.#index = hkdf(first, 'custodia', 'blind-index-root');
    this.#signing = hkdf(first, 'custodia', 'signing-root');
  }
  protected keks(): ReadonlyMap<number, { key: Buffer; info: KekInfo }> {
    return this.#keks;
  }
  indexRoot(): Buffer {
    return this.#index;
  }
  signingRoot(): Buffer {
    return this.#signing;
  }
  addKekVersion(): Promise<number> {
    return Promise.reject(
      new DomainError(
        'invalid_input',
        'Keys from CUSTODIA_MASTER_KEY are rotated by adding a version there ("1:<old>,2:<new>"); `keys rotate` then rewraps every data key.',
      ),
    );
  }
  retireKekVersion(): Promise<void> {
    return Promise.reject(
      new DomainError(
        'invalid_input',
        'Keys from CUSTODIA_MASTER_KEY are retired by removing their version from it.',
      ),
    );
  }
}

const keyringSchema = z.strictObject({
  format: z.literal('custodia-keyring/1'),
  keks: z
    .array(
      z.strictObject({
        version: z.number().int().min(1),
        key: z.string().nullable(),
        createdAt: z.string(),
        retiredAt: z.string().nullable(),
      }),
    )
    .min(1),
  indexKey: z.string(),
  signingKey: z.string(),
});
type KeyringFile = z.infer<typeof keyringSchema>;

function decodeKey(b64: string): Buffer {
  const key = Buffer.from(b64, 'base64');
  if (key.length !== 32) throw new DomainError('invalid_config', 'The keyring file is malformed.');
  return key;
}

/** The default provider: a JSON keyring file, mode 0600, written atomically. */
export class FileKeyProvider extends LocalKeyProvider {
  readonly kind = 'file';
  #file: KeyringFile;
  #keks = new Map<number, { key: Buffer; info: KekInfo }>();
  #checkedAt = 0;
  /** What the file was when last read: inode, size and mtime (an atomic replace changes the
   * inode even when the coarse mtime does not). */
  #signature = '';

  /**
   * `keys rotate` and `keys retire` change the file from another process while servers run:
   * at most once a second, a changed file is read again, so a running server learns a new KEK
   * version (and wraps new data keys under it) within a second.
   */
  protected override refresh(): void {
    const now = Date.now();
    if (now - this.#checkedAt < REFRESH_MS) return;
    this.#checkedAt = now;
    try {
      const signature = fileSignature(this.filePath);
      if (signature === this.#signature) return;
      const file = keyringSchema.parse(JSON.parse(readFileSync(this.filePath, 'utf8')));
      this.#signature = signature;
      this.#file = file;
      this.#load(file);
    } catch {
      // A keyring being replaced or unreadable for a moment: keep the keys already held.
    }
  }

  private constructor(
    readonly filePath: string,
    file: KeyringFile,
  ) {
    super();
    this.#file = file;
    this.#load(file);
    this.#checkedAt = Date.now();
    try {
      this.#signature = fileSignature(filePath);
    } catch {
      this.#signature = '';
    }
  }

  #load(file: KeyringFile): void {
    const keks = new Map<number, { key: Buffer; info: KekInfo }>();
    for (const k of file.keks) {
      if (k.key === null) continue;
      keks.set(k.version, {
        key: decodeKey(k.key),
        info: { version: k.version, createdAt: k.createdAt, retiredAt: k.retiredAt },
      });
    }
    this.#keks = keks;
  }

  /** Creates the keyring if it does not exist; refuses one that others can read. */
  static async openOrCreate(filePath: string, now: Date): Promise<FileKeyProvider> {
    try {
      return await FileKeyProvider.open(filePath);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
    const file: KeyringFile = {
      format: 'custodia-keyring/1',
      keks: [
        {
          version: 1,
          key: randomKey().toString('base64'),
          createdAt: now.toISOString(),
          retiredAt: null,
        },
      ],
      indexKey: randomKey().toString('base64'),
      signingKey: randomKey().toString('base64'),
    };
    await fs.mkdir(path.dirname(filePath), { recursive: true, mode: 0o700 });
    await writeAtomically(filePath, file, true);
    return new FileKeyProvider(filePath, file);
  }

  static async open(filePath: string): Promise<FileKeyProvider> {
    const stat = await fs.stat(filePath);
    if ((stat.mode & 0o077) !== 0) {
      throw new DomainError(
        'invalid_config',
        'The keyring file must be readable by its owner only (chmod 600).',
      );
    }
    let parsed: KeyringFile;
    try {
      parsed = keyringSchema.parse(JSON.parse(await fs.readFile(filePath, 'utf8')));
    } catch {
      throw new DomainError('invalid_config', 'The keyring file is malformed.');
    }
    decodeKey(parsed.indexKey);
    decodeKey(parsed.signingKey);
    return new FileKeyProvider(filePath, parsed);
  }

  protected keks(): ReadonlyMap<number, { key: Buffer; info: KekInfo }> {
    return this.#keks;
  }
  override listKeks(): readonly KekInfo[] {
    this.refresh();
    return this.#file.keks
      .map((k) => ({ version: k.version, createdAt: k.createdAt, retiredAt: k.retiredAt }))
      .sort((a, b) => a.version - b.version);
  }
  indexRoot(): Buffer {
    return decodeKey(this.#file.indexKey);
  }
  signingRoot(): Buffer {
    return decodeKey(this.#file.signingKey);
  }

  async addKekVersion(): Promise<number> {
    const version = Math.max(...this.#file.keks.map((k) => k.version)) + 1;
    const next: KeyringFile = {
      ...this.#file,
      keks: [
        ...this.#file.keks,
        {
          version,
          key: randomKey().toString('base64'),
          createdAt: new Date().toISOString(),
          retiredAt: null,
        },
      ],
    };
    await writeAtomically(this.filePath, next, false);
    this.#file = next;
    this.#load(next);
    return version;
  }

  async retireKekVersion(version: number): Promise<void> {
    if (version === this.currentKekVersion()) {
      throw new DomainError('conflict', 'The current key-encryption key cannot be retired.');
    }
    const next: KeyringFile = {
      ...this.#file,
      keks: this.#file.keks.map((k) =>
        k.version === version ? { ...k, key: null, retiredAt: new Date().toISOString() } : k,
      ),
    };
    await writeAtomically(this.filePath, next, false);
    this.#file = next;
    this.#load(next);
  }
}

async function writeAtomically(
  filePath: string,
  file: KeyringFile,
  exclusive: boolean,
): Promise<void> {
  const tmp = `${filePath}.tmp-${process.pid}`;
  const handle = await fs.open(tmp, 'w', 0o600);
  try {
    await handle.writeFile(JSON.stringify(file, null, 2) + '\n');
    await handle.sync();
  } finally {
    await handle.close();
  }
  if (exclusive) {
    // Never replace a keyring that appeared meanwhile: losing it would lose every key.
    try {
      await fs.link(tmp, filePath);
    } finally {
      await fs.unlink(tmp);
    }
  } else {
    await fs.rename(tmp, filePath);
  }
  const dir = await fs.open(path.dirname(filePath), fsConstants.O_RDONLY);
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}

/** The provider the configuration selects: the environment's master key, else the keyring file. */
export async function openKeyProvider(
  config: { masterKey: string | undefined; keyringFile: string },
  now: Date,
  create: boolean,
): Promise<KeyProvider> {
  if (config.masterKey !== undefined) return new EnvKeyProvider(config.masterKey);
  return create
    ? FileKeyProvider.openOrCreate(config.keyringFile, now)
    : FileKeyProvider.open(config.keyringFile);
}
