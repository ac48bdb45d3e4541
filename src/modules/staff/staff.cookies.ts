/** The browser session cookie: HttpOnly, SameSite=Strict, Secure except on plain-HTTP loopback. */

export const SESSION_COOKIE = 'custodia_session';

function isLoopback(hostname: string): boolean {
  const host = hostname.replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
  return host === 'localhost' || host === '127.0.0.1' || host === '::1';
}

/** Secure unless the request came over plain HTTP to a loopback address (local development). */
export function cookieSecure(raw: {
  readonly protocol: string;
  readonly hostname: string;
}): boolean {
  return raw.protocol === 'https' || !isLoopback(raw.hostname);
}

export function sessionCookie(token: string, secure: boolean, maxAgeSeconds: number): string {
  return [
    `${SESSION_COOKIE}=${token}`,
    'Path=/',
    'HttpOnly',
    'SameSite=Strict',
    `Max-Age=${maxAgeSeconds}`,
    ...(secure ? ['Secure'] : []),
  ].join('; ');
}

export function clearedSessionCookie(secure: boolean): string {
  return sessionCookie('', secure, 0);
}

/** The session token from a Cookie header, if there is one. */
export function readSessionCookie(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  for (const part of header.split(';')) {
    const [name, ...rest] = part.trim().split('=');
    if (name === SESSION_COOKIE) return rest.join('=');
  }
  return undefined;
}
