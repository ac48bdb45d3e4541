import { generateSecret, generateSync, generateURI, verifySync } from 'otplib';

/** TOTP (RFC 6238): SHA-1, 6 digits, 30-second steps, as every authenticator app expects. */

export function newTotpSecret(): string {
  return generateSecret({ length: 20 });
}

export function totpUri(secret: string, issuer: string, label: string): string {
  return generateURI({ issuer, label, secret });
}

/**
 * The time step the code matches (one step of clock drift either way), or undefined. A code
 * whose step is not after `afterStep` is refused, so a code is never accepted twice.
 */
export function verifyTotp(
  secret: string,
  code: string,
  now: Date,
  afterStep: number | null,
): number | undefined {
  if (!/^[0-9]{6}$/.test(code)) return undefined;
  let result;
  try {
    result = verifySync({
      secret,
      token: code,
      epoch: Math.floor(now.getTime() / 1000),
      epochTolerance: 30,
      ...(afterStep === null ? {} : { afterTimeStep: afterStep }),
    });
  } catch {
    // otplib throws when every step it would check is at or before `afterStep` (a clock that
    // went back): no code can pass then.
    return undefined;
  }
  if (!result.valid) return undefined;
  const step = (result as { timeStep?: unknown }).timeStep;
  return typeof step === 'number' ? step : undefined;
}

/** The code an authenticator shows at `now` (tests and enrolment checks). */
export function totpCode(secret: string, now: Date): string {
  return generateSync({ secret, epoch: Math.floor(now.getTime() / 1000) });
}
