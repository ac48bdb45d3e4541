import { hash, verify } from '@node-rs/argon2';

/**
 * Password hashing: argon2id with OWASP's recommended minimum (19 MiB, 2 passes, 1 lane).
 * The encoded hash carries its parameters, so they can be raised without breaking old hashes.
 */
const options = {
  algorithm: 2 /* Argon2id (a const enum in the typings) */,
  memoryCost: 19_456,
  timeCost: 2,
  parallelism: 1,
};

export async function hashPassword(password: string): Promise<string> {
  return hash(password, options);
}

/** False for a wrong password and for any malformed hash: callers cannot tell them apart. */
export async function verifyPassword(encoded: string, password: string): Promise<boolean> {
  try {
    return await verify(encoded, password);
  } catch {
    return false;
  }
}

/** A hash of nothing anyone knows: verified against when the account does not exist, so that a
 * login for an unknown email takes as long as one for a known email. */
let decoy: Promise<string> | undefined;
export async function decoyPasswordHash(): Promise<string> {
  decoy ??= hash('custodia decoy password, never valid', options);
  return decoy;
}
