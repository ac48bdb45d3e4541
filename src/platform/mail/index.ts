import type { Config } from '../config.js';
import type { Logger } from '../logger.js';
import type { Mailer } from './mailer.js';
import { outboxMailer } from './outbox-mailer.js';
import { smtpMailer } from './smtp-mailer.js';

export { isLoopbackHost } from './address.js';
export { MailDeliveryError, type MailMessage, type Mailer } from './mailer.js';
export { readOutbox, type OutboxEntry } from './outbox-mailer.js';
export { SmtpFailure, transportOptions, type SmtpFailureFacts } from './smtp-mailer.js';

/**
 * The process's mailer. With `smtpHost` it sends by SMTP, over TLS unless the host is loopback;
 * without, it writes each message to `<dataDir>/outbox` (files 0600, directory 0700). Either way
 * it logs a message id and the outcome, never the recipient, subject or body, and a failure
 * rejects with an error that holds none of them.
 */
export function createMailer(config: Config, logger: Logger): Mailer {
  if (config.smtpHost !== undefined) return smtpMailer(config, logger);
  logger.info('no SMTP host is configured: mail is written to the outbox, not sent');
  return outboxMailer(config.dataDir, config.mailFrom, logger);
}
