import { createTransport } from 'nodemailer';
import type SMTPTransport from 'nodemailer/lib/smtp-transport/index.js';
import type { Config } from '../config.js';
import { newId } from '../ids.js';
import type { Logger } from '../logger.js';
import { isLoopbackHost } from './address.js';
import { assertSendable, MailDeliveryError, messageIdHeader, type Mailer } from './mailer.js';

/** A one-time code is worth little after a minute: fail fast rather than hold the request. */
const CONNECTION_TIMEOUT_MS = 10_000;
const GREETING_TIMEOUT_MS = 10_000;
const SOCKET_TIMEOUT_MS = 30_000;

/**
 * The SMTP transport's options (pure, for tests and review): STARTTLS is required unless the
 * connection is implicit TLS or the host is loopback; throws when no SMTP host is configured.
 */
export function transportOptions(config: Config): SMTPTransport.Options {
  const host = config.smtpHost;
  if (host === undefined) throw new Error('no SMTP host is configured');
  const { smtpUser: user, smtpPassword: pass } = config;
  return {
    host,
    port: config.smtpPort,
    secure: config.smtpSecure,
    // Credentials and codes cross the network only encrypted; a loopback relay may be plain.
    requireTLS: !config.smtpSecure && !isLoopbackHost(host),
    ...(user !== undefined && pass !== undefined ? { auth: { user, pass } } : {}),
    connectionTimeout: CONNECTION_TIMEOUT_MS,
    greetingTimeout: GREETING_TIMEOUT_MS,
    socketTimeout: SOCKET_TIMEOUT_MS,
    logger: false,
    debug: false,
    disableFileAccess: true,
    disableUrlAccess: true,
  };
}

/** Facts about a failure that hold no address, no server text and no content. */
export interface SmtpFailureFacts {
  readonly code: string | undefined;
  readonly responseCode: number | undefined;
  readonly command: string | undefined;
}

function failureFacts(error: unknown): SmtpFailureFacts {
  const e = (typeof error === 'object' && error !== null ? error : {}) as Record<string, unknown>;
  const pick = (v: unknown, pattern: RegExp) =>
    typeof v === 'string' && pattern.test(v) ? v : undefined;
  return {
    code: pick(e['code'], /^[A-Z0-9_]{1,32}$/),
    responseCode: typeof e['responseCode'] === 'number' ? e['responseCode'] : undefined,
    command: pick(e['command'], /^[A-Z ]{1,16}$/),
  };
}

/**
 * The cause of a delivery failure. nodemailer's own error quotes the server's reply, which
 * often names the recipient ("550 5.1.1 <…>: Recipient address rejected"), and pino prints
 * an error's causes; so the cause keeps the codes only.
 */
export class SmtpFailure extends Error implements SmtpFailureFacts {
  override readonly name = 'SmtpFailure';
  readonly code: string | undefined;
  readonly responseCode: number | undefined;
  readonly command: string | undefined;
  constructor(facts: SmtpFailureFacts) {
    const parts = [facts.code ?? 'unknown error', facts.responseCode, facts.command];
    super(`SMTP ${parts.filter((p) => p !== undefined).join(' ')}`);
    this.code = facts.code;
    this.responseCode = facts.responseCode;
    this.command = facts.command;
  }
}

/** Sends each message by SMTP, one connection per message. */
export function smtpMailer(config: Config, logger: Logger): Mailer {
  const transport = createTransport(transportOptions(config));
  let closed = false;
  return {
    async send(message) {
      if (closed) throw new Error('mailer is closed');
      assertSendable(message);
      const id = newId();
      try {
        await transport.sendMail({
          from: config.mailFrom,
          to: message.to,
          subject: message.subject,
          text: message.text,
          messageId: messageIdHeader(id, config.mailFrom),
          date: new Date(),
        });
      } catch (error) {
        const facts = failureFacts(error);
        logger.warn(
          { messageId: id, code: facts.code, responseCode: facts.responseCode },
          'mail delivery failed',
        );
        throw new MailDeliveryError('mail delivery failed', facts.code, {
          cause: new SmtpFailure(facts),
        });
      }
      logger.info({ messageId: id }, 'mail sent');
    },
    // Sent mail is not kept here: nothing to forget or purge.
    forget: () => Promise.resolve(0),
    purgeBefore: () => Promise.resolve(0),
    close() {
      closed = true;
      transport.close();
      return Promise.resolve();
    },
  };
}
