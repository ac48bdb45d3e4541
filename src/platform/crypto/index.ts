export { BlindIndexer } from './blind-index.js';
export { openField, sealField, type FieldBinding } from './envelope.js';
export {
  EnvKeyProvider,
  FileKeyProvider,
  openKeyProvider,
  REFRESH_MS,
  type DataKeyBinding,
  type KekInfo,
  type KeyProvider,
} from './keyring.js';
export {
  constantTimeEqual,
  randomDigits,
  randomKey,
  secureRandom,
  sha256Hex,
} from './primitives.js';
export { Signer, verifySignature } from './signing.js';
export { decoyPasswordHash, hashPassword, verifyPassword } from './passwords.js';
export { newTotpSecret, totpCode, totpUri, verifyTotp } from './totp.js';
