import { DomainError } from '../errors.js';
import { aesGcmOpen, aesGcmSeal, KEY_BYTES } from './primitives.js';

/** Envelope format version, the first byte of every stored ciphertext. */
const FORMAT_V1 = 0x01;

/** What a field ciphertext is bound to: moving it to another row or column breaks it. */
export interface FieldBinding {
  readonly workspaceId: string;
  readonly customerId: string;
  readonly category: string;
  readonly field: string;
  /** The data key's id: the "key version" of the field. */
  readonly keyId: string;
}

export function fieldAad(b: FieldBinding): Buffer {
  return Buffer.from(
    ['custodia/field/v1', b.workspaceId, b.customerId, b.category, b.field, b.keyId].join('\u0000'),
  );
}

function decryptionFailed(): DomainError {
  return new DomainError('decryption_failed', 'Stored data could not be decrypted.');
}

/** Encrypts one field value under its data key with AES-256-GCM and a fresh 96-bit nonce. */
export function sealField(dataKey: Buffer, plaintext: string, binding: FieldBinding): Buffer {
  if (dataKey.length !== KEY_BYTES) throw decryptionFailed();
  const sealed = aesGcmSeal(dataKey, Buffer.from(plaintext, 'utf8'), fieldAad(binding));
  return Buffer.concat([Buffer.of(FORMAT_V1), sealed]);
}

/** Opens a field envelope; any failure (tampering, wrong row, wrong key) is one generic error. */
export function openField(dataKey: Buffer, envelope: Uint8Array, binding: FieldBinding): string {
  const buf = Buffer.from(envelope.buffer, envelope.byteOffset, envelope.byteLength);
  if (buf.length < 1 || buf[0] !== FORMAT_V1 || dataKey.length !== KEY_BYTES) {
    throw decryptionFailed();
  }
  const plain = aesGcmOpen(dataKey, buf.subarray(1), fieldAad(binding));
  if (plain === undefined) throw decryptionFailed();
  return plain.toString('utf8');
}
