/** The portal's cookie: HttpOnly, SameSite=Strict, only sent to the portal's routes. */

export const PORTAL_COOKIE = 'custodia_portal';

export function portalCookie(token: string, secure: boolean, maxAgeSeconds: number): string {
  return [
    `${PORTAL_COOKIE}=${token}`,
    'Path=/api/v1/portal',
    'HttpOnly',
    'SameSite=Strict',
    `Max-Age=${maxAgeSeconds}`,
    ...(secure ? ['Secure'] : []),
  ].join('; ');
}

export function clearedPortalCookie(secure: boolean): string {
  return portalCookie('', secure, 0);
}

export function readPortalCookie(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  for (const part of header.split(';')) {
    const [name, ...rest] = part.trim().split('=');
    if (name === PORTAL_COOKIE) return rest.join('=');
  }
  return undefined;
}
