import type { AddressInfo } from 'node:net';
import { TextDecoder } from 'node:util';
import { SMTPServer } from 'smtp-server';

/** One message as the test server received it. */
export interface TestSmtpMessage {
  /** The envelope sender (MAIL FROM). */
  readonly from: string;
  /** The envelope recipients (RCPT TO) that were accepted: where the message really went. */
  readonly to: string[];
  /** The Subject header, RFC 2047 encoded words decoded. */
  readonly subject: string;
  /** The text/plain body, transfer encoding and charset decoded, line breaks as `\n`. */
  readonly text: string;
  /** Every header, decoded, by lower-case name (the first of each name). */
  readonly headers: Readonly<Record<string, string>>;
  /** The user name the client authenticated as, if it did. */
  readonly user: string | undefined;
  /** The message as transmitted (after dot-unstuffing). */
  readonly raw: string;
}

export type RejectStage = 'rcpt' | 'data';

export interface TestSmtpServer {
  readonly host: string;
  readonly port: number;
  /** Every message delivered so far, in order of arrival. */
  readonly messages: TestSmtpMessage[];
  /** The first message, delivered or still to come, that matches; rejects after the timeout. */
  waitFor(
    predicate?: (message: TestSmtpMessage) => boolean,
    timeoutMs?: number,
  ): Promise<TestSmtpMessage>;
  /**
   * Refuses the next `count` RCPT TO (550, quoting the address as Postfix does) or DATA (554)
   * commands, to test how senders handle failures.
   */
  rejectNext(count: number, stage?: RejectStage): void;
  /** Forgets the messages and any pending rejections. */
  clear(): void;
  close(): Promise<void>;
}

interface Waiter {
  readonly predicate: (message: TestSmtpMessage) => boolean;
  readonly resolve: (message: TestSmtpMessage) => void;
  readonly reject: (error: Error) => void;
}

function smtpError(responseCode: number, message: string): Error {
  return Object.assign(new Error(message), { responseCode });
}

/**
 * A real SMTP server on 127.0.0.1 (random port) that keeps what it receives. Plain SMTP only:
 * no STARTTLS, AUTH accepted without TLS, any user and password; loopback is never left.
 */
export async function startTestSmtpServer(): Promise<TestSmtpServer> {
  const host = '127.0.0.1';
  const messages: TestSmtpMessage[] = [];
  const waiters = new Set<Waiter>();
  const rejections: Record<RejectStage, number> = { rcpt: 0, data: 0 };

  const server = new SMTPServer({
    authOptional: true,
    allowInsecureAuth: true,
    disabledCommands: ['STARTTLS'],
    logger: false,
    banner: 'Custodia test SMTP server',
    closeTimeout: 1000,
    onAuth(auth, _session, callback) {
      callback(null, { user: auth.username });
    },
    onRcptTo(address, _session, callback) {
      if (rejections.rcpt > 0) {
        rejections.rcpt -= 1;
        callback(smtpError(550, `5.1.1 <${address.address}>: Recipient address rejected`));
        return;
      }
      callback();
    },
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('end', () => {
        const to = session.envelope.rcptTo.map((a) => a.address);
        if (rejections.data > 0) {
          rejections.data -= 1;
          callback(smtpError(554, `5.7.1 Message to <${to.join('>, <')}> rejected`));
          return;
        }
        const raw = Buffer.concat(chunks);
        let decoded: DecodedMessage;
        try {
          decoded = decodeMessage(raw);
        } catch (error) {
          const reason = error instanceof Error ? error.message : 'unknown';
          callback(smtpError(554, `5.6.0 The test server could not decode the message: ${reason}`));
          return;
        }
        const mailFrom = session.envelope.mailFrom;
        const message: TestSmtpMessage = {
          from: mailFrom === false ? '' : mailFrom.address,
          to,
          subject: decoded.headers['subject'] ?? '',
          text: decoded.text,
          headers: decoded.headers,
          user: typeof session.user === 'string' ? session.user : undefined,
          raw: raw.toString('utf8'),
        };
        messages.push(message);
        for (const waiter of waiters) {
          try {
            if (waiter.predicate(message)) waiter.resolve(message);
          } catch (error) {
            waiter.reject(error instanceof Error ? error : new Error('waitFor predicate threw'));
          }
        }
        callback();
      });
    },
  });
  // A client that drops its connection must not fail the test process.
  server.on('error', () => undefined);

  await new Promise<void>((resolve, reject) => {
    server.server.once('error', reject);
    server.listen(0, host, () => {
      server.server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.server.address() as AddressInfo;

  return {
    host,
    port,
    messages,
    waitFor(predicate = () => true, timeoutMs = 5000) {
      const found = messages.find(predicate);
      if (found !== undefined) return Promise.resolve(found);
      return new Promise<TestSmtpMessage>((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.delete(waiter);
          reject(
            new Error(
              `no matching message reached the test SMTP server within ${timeoutMs} ms ` +
                `(${messages.length} received)`,
            ),
          );
        }, timeoutMs);
        const settle =
          <T>(fn: (value: T) => void) =>
          (value: T) => {
            clearTimeout(timer);
            waiters.delete(waiter);
            fn(value);
          };
        const waiter: Waiter = { predicate, resolve: settle(resolve), reject: settle(reject) };
        waiters.add(waiter);
      });
    },
    rejectNext(count, stage = 'rcpt') {
      if (!Number.isInteger(count) || count < 0)
        throw new RangeError('count must be a whole number');
      rejections[stage] += count;
    },
    clear() {
      messages.length = 0;
      rejections.rcpt = 0;
      rejections.data = 0;
    },
    async close() {
      for (const waiter of waiters) waiter.reject(new Error('the test SMTP server was closed'));
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

// --- A small MIME decoder: enough for what nodemailer sends, and checked against it. ---

export interface DecodedMessage {
  readonly headers: Readonly<Record<string, string>>;
  readonly text: string;
}

interface Entity {
  /** Raw header values (bytes as latin1), by lower-case name, first of each. */
  readonly headers: ReadonlyMap<string, string>;
  /** The body, bytes as latin1. */
  readonly body: string;
}

function splitEntity(source: string): Entity {
  const blank = /\r?\n\r?\n/.exec(source);
  const head = blank === null ? source : source.slice(0, blank.index);
  const body = blank === null ? '' : source.slice(blank.index + blank[0].length);
  const headers = new Map<string, string>();
  // Unfolding (RFC 5322 2.2.3): a line break followed by white space is removed.
  for (const line of head.replace(/\r?\n(?=[ \t])/g, '').split(/\r?\n/)) {
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    const name = line.slice(0, colon).trim().toLowerCase();
    if (!headers.has(name)) headers.set(name, line.slice(colon + 1).trim());
  }
  return { headers, body };
}

function latin1Bytes(value: string): Buffer {
  return Buffer.from(value, 'latin1');
}

function decodeCharset(bytes: Buffer, charset: string): string {
  // RFC 2231 allows a language after '*' ("UTF-8*es").
  const label = (charset.split('*')[0] ?? '').trim().toLowerCase() || 'us-ascii';
  let decoder: TextDecoder;
  try {
    decoder = new TextDecoder(label, { fatal: true });
  } catch {
    throw new Error(`unsupported charset ${label}`);
  }
  return decoder.decode(bytes);
}

/** Quoted-printable (RFC 2045 6.7), to bytes. */
export function decodeQuotedPrintable(value: string): Buffer {
  const text = value.replace(/[ \t]+(?=\r?\n|$)/g, '').replace(/=\r?\n/g, '');
  const out: number[] = [];
  for (let i = 0; i < text.length; i += 1) {
    const hex = text.slice(i + 1, i + 3);
    if (text[i] === '=' && /^[0-9A-Fa-f]{2}$/.test(hex)) {
      out.push(Number.parseInt(hex, 16));
      i += 2;
    } else {
      out.push(text.charCodeAt(i) & 0xff);
    }
  }
  return Buffer.from(out);
}

const ENCODED_WORD = /=\?([^?\s]+)\?([QqBb])\?([^?\s]*)\?=/g;

function encodedWordBytes(encoding: string, data: string): Buffer {
  if (encoding.toUpperCase() === 'B') return Buffer.from(data, 'base64');
  return decodeQuotedPrintable(data.replace(/_/g, ' '));
}

/**
 * A header value: RFC 2047 encoded words decoded (adjacent words of one charset joined before
 * decoding, since a character may be split between them; white space between words dropped),
 * other text taken as UTF-8 (RFC 6532).
 */
export function decodeHeaderValue(raw: string): string {
  let out = '';
  let pending: { charset: string; bytes: Buffer[] } | undefined;
  let last = 0;
  const flush = () => {
    if (pending !== undefined) out += decodeCharset(Buffer.concat(pending.bytes), pending.charset);
    pending = undefined;
  };
  for (const m of raw.matchAll(ENCODED_WORD)) {
    const between = raw.slice(last, m.index);
    last = m.index + m[0].length;
    const [, charset = '', encoding = 'Q', data = ''] = m;
    const bytes = encodedWordBytes(encoding, data);
    if (pending !== undefined && /^[ \t]*$/.test(between)) {
      if (pending.charset.toLowerCase() === charset.toLowerCase()) {
        pending.bytes.push(bytes);
        continue;
      }
      flush();
    } else {
      flush();
      out += decodeCharset(latin1Bytes(between), 'utf-8');
    }
    pending = { charset, bytes: [bytes] };
  }
  flush();
  return out + decodeCharset(latin1Bytes(raw.slice(last)), 'utf-8');
}

interface ContentType {
  readonly type: string;
  readonly params: ReadonlyMap<string, string>;
}

function parseContentType(value: string | undefined): ContentType {
  const [type = '', ...rest] = (value ?? 'text/plain; charset=us-ascii').split(';');
  const params = new Map<string, string>();
  const source = rest.join(';');
  for (const m of source.matchAll(/([^\s=;]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^\s;]*)/g)) {
    const [, name = '', v = ''] = m;
    const unquoted = v.startsWith('"') ? v.slice(1, -1).replace(/\\(.)/g, '$1') : v;
    params.set(name.toLowerCase(), unquoted);
  }
  return { type: type.trim().toLowerCase(), params };
}

function splitMultipart(body: string, boundary: string): string[] {
  const delimiter = `--${boundary}`;
  const parts: string[] = [];
  let current: string[] | undefined;
  for (const line of body.split(/\r?\n/)) {
    const bare = line.replace(/[ \t]+$/, '');
    if (bare === `${delimiter}--`) break;
    if (bare === delimiter) {
      if (current !== undefined) parts.push(current.join('\r\n'));
      current = [];
    } else {
      current?.push(line);
    }
  }
  if (current !== undefined) parts.push(current.join('\r\n'));
  return parts;
}

function plainText(entity: Entity): string | undefined {
  const contentType = parseContentType(entity.headers.get('content-type'));
  if (contentType.type.startsWith('multipart/')) {
    const boundary = contentType.params.get('boundary');
    if (boundary === undefined || boundary === '') throw new Error('multipart without boundary');
    for (const part of splitMultipart(entity.body, boundary)) {
      const text = plainText(splitEntity(part));
      if (text !== undefined) return text;
    }
    return undefined;
  }
  if (contentType.type !== 'text/plain') return undefined;
  const encoding = (entity.headers.get('content-transfer-encoding') ?? '7bit').toLowerCase();
  let bytes: Buffer;
  switch (encoding) {
    case '7bit':
    case '8bit':
    case 'binary':
      bytes = latin1Bytes(entity.body);
      break;
    case 'quoted-printable':
      bytes = decodeQuotedPrintable(entity.body);
      break;
    case 'base64':
      bytes = Buffer.from(entity.body.replace(/\s+/g, ''), 'base64');
      break;
    default:
      throw new Error(`unsupported transfer encoding ${encoding}`);
  }
  return decodeCharset(bytes, contentType.params.get('charset') ?? 'us-ascii').replace(
    /\r\n/g,
    '\n',
  );
}

/**
 * Headers and text/plain body of a message (the first text/plain part of a multipart one).
 * The line break SMTP requires after the last line is not taken as part of the text.
 */
export function decodeMessage(raw: Buffer): DecodedMessage {
  const entity = splitEntity(raw.toString('latin1').replace(/\r?\n$/, ''));
  const headers: Record<string, string> = {};
  for (const [name, value] of entity.headers) headers[name] = decodeHeaderValue(value);
  const text = plainText(entity);
  if (text === undefined) throw new Error('no text/plain part');
  return { headers, text };
}
