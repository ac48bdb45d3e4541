/** One plain-text message. Its body may hold a one-time code: it is never logged. */
export interface MailMessage {
  readonly to: string;
  readonly subject: string;
  readonly text: string;
}

/** Delivers mail: by SMTP when configured, else as files under `<dataDir>/outbox`. */
export interface Mailer {
  send(message: MailMessage): Promise<void>;
  close(): Promise<void>;
}
