/** Every error the system reports to a caller has one of these stable codes. */
export const errorStatus = {
  invalid_input: 400,
  invalid_config: 500,
  unauthenticated: 401,
  login_failed: 401,
  mfa_required: 401,
  mfa_failed: 401,
  invitation_invalid: 400,
  password_rejected: 400,
  csrf_failed: 403,
  code_invalid: 401,
  code_expired: 401,
  reverification_required: 403,
  account_locked: 429,
  forbidden: 403,
  not_found: 404,
  unknown_purpose: 400,
  unknown_notice_version: 400,
  notice_outdated: 409,
  purpose_retired: 409,
  consent_not_active: 409,
  consent_missing: 409,
  conflict: 409,
  unsupported_media_type: 415,
  payload_too_large: 413,
  rate_limited: 429,
  audit_unavailable: 503,
  decryption_failed: 500,
  internal_error: 500,
} as const satisfies Record<string, number>;

export type ErrorCode = keyof typeof errorStatus;

/**
 * An expected failure with a stable code. The message is shown to the caller, so it must
 * never contain input values, configuration values or personal data.
 */
export class DomainError extends Error {
  override readonly name = 'DomainError';
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details?: { readonly fields?: readonly string[] },
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

export function isDomainError(error: unknown): error is DomainError {
  return error instanceof DomainError;
}

export function statusOf(code: ErrorCode): number {
  return errorStatus[code];
}
