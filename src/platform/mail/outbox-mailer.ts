import { chmod, mkdir, open, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { newId } from '../ids.js';
import type { Logger } from '../logger.js';
import { assertSendable, MailDeliveryError, messageIdHeader, type Mailer } from './mailer.js';

export interface OutboxEntry {
  /** Absolute path of the `.eml` file. */
  readonly file: string;
  readonly to: string;
  readonly subject: string;
  readonly text: string;
}

export function outboxDir(dataDir: string): string {
  return path.join(dataDir, 'outbox');
}

/** RFC 5322 date-time in UTC: `Thu, 15 Jan 2026 09:00:00 +0000`. */
function rfc5322Date(at: Date): string {
  return at.toUTCString().replace(/GMT$/, '+0000');
}

async function ensurePrivateDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const { mode } = await stat(dir);
  if ((mode & 0o077) !== 0) await chmod(dir, 0o700);
}

/** Writes each message atomically to `<dataDir>/outbox/<timestamp>-<uuid>.eml`. */
export function outboxMailer(dataDir: string, mailFrom: string, logger: Logger): Mailer {
  const dir = outboxDir(dataDir);
  let closed = false;
  return {
    async send(message) {
      if (closed) throw new Error('mailer is closed');
      assertSendable(message);
      const at = new Date();
      const id = newId(at.getTime());
      const name = `${at.toISOString().replace(/[:.]/g, '-')}-${id}.eml`;
      const headers = [
        `To: ${message.to}`,
        `From: ${mailFrom}`,
        `Subject: ${message.subject}`,
        `Date: ${rfc5322Date(at)}`,
        `Message-ID: ${messageIdHeader(id, mailFrom)}`,
        'MIME-Version: 1.0',
        'Content-Type: text/plain; charset=utf-8',
        'Content-Transfer-Encoding: 8bit',
      ];
      const body = message.text.replace(/\r?\n/g, '\r\n');
      const content = `${headers.join('\r\n')}\r\n\r\n${body}\r\n`;
      const tmp = path.join(dir, `.${name}.tmp`);
      try {
        await ensurePrivateDir(dir);
        const file = await open(tmp, 'wx', 0o600);
        try {
          await file.writeFile(content, 'utf8');
          await file.sync();
        } finally {
          await file.close();
        }
        await rename(tmp, path.join(dir, name));
      } catch (error) {
        await rm(tmp, { force: true }).catch(() => undefined);
        const code = errorCode(error);
        logger.warn({ messageId: id, code }, 'mail could not be written');
        throw new MailDeliveryError('mail could not be written to the outbox', code, {
          cause: error,
        });
      }
      logger.info({ messageId: id }, 'mail written to the outbox');
    },
    async forget(to) {
      const doomed = (await readOutbox(dataDir)).filter(
        (m) => m.to.toLowerCase() === to.toLowerCase(),
      );
      await Promise.all(doomed.map((m) => rm(m.file, { force: true })));
      return doomed.length;
    },
    purgeBefore(at) {
      return purgeFilesBefore(dir, '.eml', at);
    },
    close() {
      closed = true;
      return Promise.resolve();
    },
  };
}

/**
 * Deletes the files of a kind in an outbox directory written before `at` (by mtime), and
 * leftover temporary files of the same age. Answers how many message files went.
 */
export async function purgeFilesBefore(dir: string, suffix: string, at: Date): Promise<number> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (error) {
    if (errorCode(error) === 'ENOENT') return 0;
    throw error;
  }
  let purged = 0;
  for (const name of names) {
    if (!name.endsWith(suffix) && !name.endsWith(`${suffix}.tmp`)) continue;
    const file = path.join(dir, name);
    const info = await stat(file).catch(() => undefined);
    if (info === undefined || !info.isFile() || info.mtime >= at) continue;
    await rm(file, { force: true });
    if (!name.startsWith('.')) purged += 1;
  }
  return purged;
}

function errorCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

function headerValue(head: string, name: string): string {
  const unfolded = head.replace(/\r?\n(?=[ \t])/g, '');
  const prefix = `${name.toLowerCase()}:`;
  for (const line of unfolded.split(/\r?\n/)) {
    if (line.toLowerCase().startsWith(prefix)) return line.slice(prefix.length).replace(/^ /, '');
  }
  return '';
}

/** The messages in `<dataDir>/outbox`, oldest first; none when the directory does not exist. */
export async function readOutbox(dataDir: string): Promise<OutboxEntry[]> {
  const dir = outboxDir(dataDir);
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (error) {
    if (errorCode(error) === 'ENOENT') return [];
    throw error;
  }
  const emails = names.filter((n) => n.endsWith('.eml') && !n.startsWith('.')).sort();
  return Promise.all(
    emails.map(async (n) => {
      const file = path.join(dir, n);
      const content = await readFile(file, 'utf8');
      const split = /\r?\n\r?\n/.exec(content);
      const head = split === null ? content : content.slice(0, split.index);
      const body = split === null ? '' : content.slice(split.index + split[0].length);
      return {
        file,
        to: headerValue(head, 'To'),
        subject: headerValue(head, 'Subject'),
        text: body.replace(/\r\n/g, '\n').replace(/\n$/, ''),
      };
    }),
  );
}
