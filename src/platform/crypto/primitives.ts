import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createHmac,
  createPrivateKey,
  createPublicKey,
  hkdfSync,
  randomBytes,
  randomFillSync,
  sign,
  timingSafeEqual,
  verify,
  type KeyObject,
} from 'node:crypto';

/** The cipher primitives. Only this folder imports node:crypto (enforced by lint). */

export const KEY_BYTES = 32;
export const NONCE_BYTES = 12;
export const TAG_BYTES = 16;

export function randomKey(): Buffer {
  return randomBytes(KEY_BYTES);
}

const pool = Buffer.alloc(8192);
let poolAt = pool.length;

/** CSPRNG bytes; small requests (ids, tokens) are served from a refilled pool, as one call each costs more than the bytes. */
export function secureRandom(bytes: number): Buffer {
  if (bytes > 256) return randomBytes(bytes);
  if (poolAt + bytes > pool.length) {
    randomFillSync(pool);
    poolAt = 0;
  }
  const out = Buffer.from(pool.subarray(poolAt, poolAt + bytes));
  pool.fill(0, poolAt, poolAt + bytes);
  poolAt += bytes;
  return out;
}

export function aesGcmSeal(key: Buffer, plaintext: Buffer, aad: Buffer): Buffer {
  const nonce = randomBytes(NONCE_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, nonce);
  cipher.setAAD(aad);
  const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return Buffer.concat([nonce, body, cipher.getAuthTag()]);
}

/** Returns undefined for any failure, so callers cannot tell one failure from another. */
export function aesGcmOpen(key: Buffer, sealed: Buffer, aad: Buffer): Buffer | undefined {
  if (sealed.length < NONCE_BYTES + TAG_BYTES) return undefined;
  try {
    const nonce = sealed.subarray(0, NONCE_BYTES);
    const tag = sealed.subarray(sealed.length - TAG_BYTES);
    const body = sealed.subarray(NONCE_BYTES, sealed.length - TAG_BYTES);
    const decipher = createDecipheriv('aes-256-gcm', key, nonce);
    decipher.setAAD(aad);
    decipher.setAuthTag(tag);
    return Buffer.concat([decipher.update(body), decipher.final()]);
  } catch {
    return undefined;
  }
}

export function hkdf(root: Buffer, salt: string, info: string, bytes = KEY_BYTES): Buffer {
  return Buffer.from(hkdfSync('sha256', root, Buffer.from(salt), Buffer.from(info), bytes));
}

export function hmacSha256(key: Buffer, data: string | Buffer): Buffer {
  return createHmac('sha256', key).update(data).digest();
}

/** A uniformly random string of decimal digits (one-time codes), from the CSPRNG. */
export function randomDigits(length: number): string {
  let out = '';
  while (out.length < length) {
    // Rejection sampling: bytes 250..255 would bias the digits.
    for (const byte of secureRandom(length * 2)) {
      if (byte < 250 && out.length < length) out += String(byte % 10);
    }
  }
  return out;
}

export function sha256Hex(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

export function constantTimeEqual(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

const ED25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

export interface SigningKeyPair {
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
  /** Raw 32-byte public key, base64. */
  readonly publicKeyBase64: string;
}

export function ed25519FromSeed(seed: Buffer): SigningKeyPair {
  const privateKey = createPrivateKey({
    key: Buffer.concat([ED25519_PKCS8_PREFIX, seed]),
    format: 'der',
    type: 'pkcs8',
  });
  const publicKey = createPublicKey(privateKey);
  const spki = publicKey.export({ format: 'der', type: 'spki' });
  return {
    privateKey,
    publicKey,
    publicKeyBase64: spki.subarray(spki.length - 32).toString('base64'),
  };
}

export function ed25519Sign(key: KeyObject, message: Buffer): string {
  return sign(null, message, key).toString('base64');
}

const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

export function ed25519Verify(
  publicKeyBase64: string,
  message: Buffer,
  signature: string,
): boolean {
  try {
    const key = createPublicKey({
      key: Buffer.concat([ED25519_SPKI_PREFIX, Buffer.from(publicKeyBase64, 'base64')]),
      format: 'der',
      type: 'spki',
    });
    return verify(null, message, key, Buffer.from(signature, 'base64'));
  } catch {
    return false;
  }
}
