import { mkdir, readdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { newId } from './ids.js';

/** One text message to a phone number (E.164). Its body may hold a one-time code. */
export interface TextMessage {
  readonly to: string;
  readonly text: string;
}

/** Delivers text messages to phones. */
export interface TextSender {
  send(message: TextMessage): Promise<void>;
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
  };
}

/** The text messages in the outbox, oldest first (for operators and tests). */
export async function readTextOutbox(dataDir: string): Promise<TextMessage[]> {
  const dir = path.join(dataDir, 'outbox', 'sms');
  let names: string[];
  try {
    names = (await readdir(dir)).filter((n) => n.endsWith('.txt')).sort();
  } catch {
    return [];
  }
  return Promise.all(
    names.map(async (n) => {
      const body = await readFile(path.join(dir, n), 'utf8');
      const [head = '', ...rest] = body.split('\n\n');
      return { to: head.replace(/^To: /, ''), text: rest.join('\n\n').trimEnd() };
    }),
  );
}
