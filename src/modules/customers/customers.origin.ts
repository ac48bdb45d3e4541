import type { RequestOrigin } from '../consent/index.js';

/** The origin of a request, for the hashed evidence of online consent; never stored as is. */
export function requestOrigin(raw: {
  readonly ip: string;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
}): RequestOrigin {
  const ua = raw.headers['user-agent'];
  return { ip: raw.ip, userAgent: Array.isArray(ua) ? ua.join(' ') : (ua ?? '') };
}
