import {
  ed25519FromSeed,
  ed25519Sign,
  ed25519Verify,
  hkdf,
  type SigningKeyPair,
} from './primitives.js';

/** Per-workspace Ed25519 keys derived from the provider's signing root. */
export class Signer {
  readonly #root: Buffer;
  readonly #pairs = new Map<string, SigningKeyPair>();

  constructor(root: Buffer) {
    this.#root = root;
  }

  #pair(workspaceId: string): SigningKeyPair {
    let pair = this.#pairs.get(workspaceId);
    if (pair === undefined) {
      pair = ed25519FromSeed(hkdf(this.#root, workspaceId, 'custodia/signing/v1'));
      this.#pairs.set(workspaceId, pair);
    }
    return pair;
  }

  publicKey(workspaceId: string): string {
    return this.#pair(workspaceId).publicKeyBase64;
  }

  sign(workspaceId: string, message: string): string {
    return ed25519Sign(this.#pair(workspaceId).privateKey, Buffer.from(message, 'utf8'));
  }
}

export function verifySignature(
  publicKeyBase64: string,
  message: string,
  signature: string,
): boolean {
  return ed25519Verify(publicKeyBase64, Buffer.from(message, 'utf8'), signature);
}
