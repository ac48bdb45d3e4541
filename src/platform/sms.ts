import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { newId } from './ids.js';
import { purgeFilesBefore } from './mail/outbox-mailer.js';

/** One text message to a phone number (E.164). Its body may hold a one-time code. */
export interface TextMessage {
  readonly to: string;
  readonly text: string;
}

/** Delivers text messages to phones. */
export interface TextSender {
  send(message: TextMessage): Promise<void>;
  /** Deletes every kept message to this number; called when the addressee's data is erased. */
  forget(to: string): Promise<number>;
  /** Deletes kept messages written before `at`; answers how many. */
  purgeBefore(at: Date): Promise<number>;
}

/**
 * No SMS gateway is integrated yet: text messages are written as files (mode 0600, directory
 * 0700) under `<dataDir>/outbox/sms`, where an operator's gateway can pick them up, and never
 * to the log.
 */
export function outboxTextSender(dataDir: string): TextSender {
  const dir = path.join(dataDir, 'outbox', 'sms');
  return {
    async send(message) {
      await mkdir(dir, { recursive: true, mode: 0o700 });
      const name = `${new Date().toISOString().replace(/[:.]/g, '-')}-${newId()}.txt`;
      const tmp = path.join(dir, `.${name}.tmp`);
      await writeFile(tmp, `To: ${message.to}\n\n${message.text}\n`, { mode: 0o600 });
      await rename(tmp, path.join(dir, name));
    },
    async forget(to) {
      const doomed = (await textFiles(dir)).filter((m) => m.to === to);
      await Promise.all(doomed.map((m) => rm(m.file, { force: true })));
      return doomed.length;
    },
    purgeBefore(at) {
      return purgeFilesBefore(dir, '.txt', at);
    },
  };
}

async function textFiles(dir: string): Promise<(TextMessage & { file: string })[]> {
  let names: string[];
  try {
    names = (await readdir(dir)).filter((n) => n.endsWith('.txt') && !n.startsWith('.')).sort();
  } catch {
    return [];
  }
  return Promise.all(
    names.map(async (n) => {
      const file = path.join(dir, n);
      const body = await readFile(file, 'utf8');
      const [head = '', ...rest] = body.split('\n\n');
      return { file, to: head.replace(/^To: /, ''), text: rest.join('\n\n').trimEnd() };
    }),
  );
}

/** The text messages in the outbox, oldest first (for operators and tests). */
export async function readTextOutbox(dataDir: string): Promise<TextMessage[]> {
  const files = await textFiles(path.join(dataDir, 'outbox', 'sms'));
  return files.map(({ to, text }) => ({ to, text }));
}
