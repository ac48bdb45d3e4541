import { isSingleRecipient, mailboxAddress } from './address.js';

/** One plain-text message. Its body may hold a one-time code: it is never logged. */
export interface MailMessage {
  readonly to: string;
  readonly subject: string;
  readonly text: string;
}

/** Delivers mail: by SMTP when configured, else as files under `<dataDir>/outbox`. */
export interface Mailer {
  send(message: MailMessage): Promise<void>;
  /**
   * Deletes every kept message to this address (the outbox's files); SMTP keeps none. Called when
   * the addressee's data is erased.
   */
  forget(to: string): Promise<number>;
  /** Deletes kept messages written before `at`; answers how many. */
  purgeBefore(at: Date): Promise<number>;
  close(): Promise<void>;
}

/**
 * Refuses a message that could reach more than one mailbox or break out of its header line;
 * the error names the field, never its value.
 */
export function assertSendable(message: MailMessage): void {
  if (!isSingleRecipient(message.to)) throw new Error('mail recipient must be one bare address');
  if (/\p{Cc}/u.test(message.subject)) throw new Error('mail subject must be one line of text');
}

/** The Message-ID header for a local message id, in the sender's domain. */
export function messageIdHeader(id: string, mailFrom: string): string {
  const address = mailboxAddress(mailFrom) ?? 'no-reply@localhost';
  return `<${id}@${address.slice(address.lastIndexOf('@') + 1)}>`;
}

/**
 * A message that could not be delivered. Its message, `code` (nodemailer's or the file
 * system's, e.g. `EENVELOPE`, `EACCES`) and cause hold no address, subject or body.
 */
export class MailDeliveryError extends Error {
  override readonly name = 'MailDeliveryError';
  constructor(
    message: string,
    readonly code: string | undefined,
    options: { cause: unknown },
  ) {
    super(message, options);
  }
}
