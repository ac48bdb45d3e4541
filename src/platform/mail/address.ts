import { BlockList, isIP } from 'node:net';

const ATOM = "[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+";
const LABEL = '[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?';
const ADDRESS = `${ATOM}(?:\\.${ATOM})*@${LABEL}(?:\\.${LABEL})*`;
const BARE = new RegExp(`^${ADDRESS}$`);
// A display name: a quoted string, or a phrase without the characters that end one.
const NAMED = new RegExp(
  `^(?:(?:"(?:[^"\\\\\\p{Cc}]|\\\\[^\\p{Cc}])*"|[^"<>@,;:\\\\\\p{Cc}]+) *)?<(${ADDRESS})>$`,
  'u',
);

/**
 * A sender mailbox: `user@example.org` or `Name <user@example.org>`, ASCII address, one line.
 * Returns the address, or undefined when the value is not one.
 */
export function mailboxAddress(value: string): string | undefined {
  if (BARE.test(value)) return value;
  return NAMED.exec(value)?.[1];
}

/**
 * A recipient: one bare address on one line. Looser than a sender (customers' addresses may be
 * internationalised) but never two addresses, a display name, or a header break.
 */
export function isSingleRecipient(value: string): boolean {
  return (
    /^[^\s@<>()[\]\\,;:"\p{Cc}]+@[^\s@<>()[\]\\,;:"\p{Cc}]+$/u.test(value) && value.length <= 320
  );
}

const loopback = new BlockList();
loopback.addSubnet('127.0.0.0', 8, 'ipv4');
loopback.addAddress('::1', 'ipv6');

/** 127.0.0.0/8, ::1 (also IPv4-mapped) and `localhost`: the hosts mail may reach without TLS. */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase();
  if (h === 'localhost' || h === 'localhost.') return true;
  const family = isIP(h);
  if (family === 0) return false;
  return loopback.check(h, family === 4 ? 'ipv4' : 'ipv6');
}

/** A host name (RFC 1123) or an IP address (IPv6 without brackets), as the SMTP host is given. */
export function isHostName(value: string): boolean {
  if (isIP(value) !== 0) return true;
  return value.length <= 253 && new RegExp(`^${LABEL}(?:\\.${LABEL})*\\.?$`).test(value);
}
