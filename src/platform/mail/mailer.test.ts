import { chmod, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { inspect } from 'node:util';
import { createTransport } from 'nodemailer';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { LogCapture } from '../../testing/harness.js';
import { decodeMessage, startTestSmtpServer, type TestSmtpServer } from '../../testing/smtp.js';
import { loadConfig, type ConfigInput } from '../config.js';
import { createLogger } from '../logger.js';
import {
  createMailer,
  MailDeliveryError,
  readOutbox,
  SmtpFailure,
  transportOptions,
  type MailMessage,
} from './index.js';

const SPANISH: MailMessage = {
  to: 'lucia.nunez@example.es',
  subject: 'Su código de acceso — Custodia',
  text:
    'Hola, Lucía:\n\nSu código de un solo uso es 482915. Caduca en diez minutos.\n' +
    '¿No lo ha pedido? Ignore este mensaje; nadie más lo verá. Año, pingüino, 10 €.',
};

// Canaries: none of them may reach a log line or an error.
const CANARY: MailMessage = {
  to: 'rcpt-canary-7731@example.es',
  subject: 'Asunto canario 5521',
  text: 'Cuerpo canario 9034: su código es 640213.',
};
const CANARY_VALUES = ['rcpt-canary-7731', 'canario 5521', 'canario 9034', '640213'];

/** Everything an error could show: message, stack, causes, inspection, JSON, a pino line. */
function everythingShown(error: unknown): string {
  const logs = new LogCapture();
  createLogger('trace', logs).error({ err: error }, 'request failed');
  const e = error as Error;
  return [
    e.message,
    e.stack ?? '',
    String(error),
    inspect(error, { depth: 8 }),
    JSON.stringify(error),
    logs.text(),
  ].join('\n');
}

async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(Error);
    return error as Error;
  }
  expect.fail('expected the promise to reject');
}

let dataDir: string;
beforeEach(async () => {
  dataDir = await mkdtemp(path.join(tmpdir(), 'custodia-mail-'));
});
afterEach(async () => {
  await rm(dataDir, { recursive: true, force: true });
});

describe('createMailer over SMTP (a real server on loopback)', () => {
  let smtp: TestSmtpServer;
  beforeAll(async () => {
    smtp = await startTestSmtpServer();
  });
  afterAll(async () => {
    await smtp.close();
  });
  beforeEach(() => {
    smtp.clear();
  });

  function smtpConfig(extra: ConfigInput = {}) {
    return loadConfig({ dataDir, smtpHost: smtp.host, smtpPort: String(smtp.port), ...extra }, {});
  }

  it('delivers recipient, sender, subject and a UTF-8 Spanish body intact', async () => {
    const logs = new LogCapture();
    const mailer = createMailer(smtpConfig(), createLogger('debug', logs));
    await mailer.send(SPANISH);
    await mailer.close();

    const m = await smtp.waitFor((x) => x.to.includes(SPANISH.to));
    expect(m.from).toBe('no-reply@localhost');
    expect(m.to).toEqual([SPANISH.to]);
    expect(m.headers['from']).toBe('Custodia <no-reply@localhost>');
    expect(m.headers['to']).toBe(SPANISH.to);
    expect(m.subject).toBe(SPANISH.subject);
    expect(m.text).toBe(SPANISH.text);
    expect(m.headers['content-type']).toMatch(/^text\/plain; charset=utf-8$/i);
    // The subject and body crossed the wire encoded, so this decoding is what was tested.
    expect(m.raw).not.toContain('código');
    expect(m.headers['message-id']).toMatch(/^<[0-9a-f-]{36}@localhost>$/);
    expect(smtp.messages).toHaveLength(1);
    expect(await readOutbox(dataDir)).toEqual([]);
  });

  it.each([
    { encoding: '7bit', text: 'Your one-time code is 123456.\nIt expires in ten minutes.' },
    { encoding: 'quoted-printable', text: SPANISH.text },
    { encoding: 'base64', text: 'ÁÉÍÓÚ ÑÜ ¿¡ €€ 123456 — ✓✓✓' },
    { encoding: 'quoted-printable', text: `Línea larga: ${'palabra '.repeat(40)}fin.` },
  ])('decodes a $encoding body intact', async ({ encoding, text }) => {
    const mailer = createMailer(smtpConfig(), createLogger('silent'));
    await mailer.send({ to: 'x@example.org', subject: 'Código ✓', text });
    await mailer.close();
    const m = await smtp.waitFor();
    expect(m.headers['content-transfer-encoding']).toBe(encoding);
    expect(m.text).toBe(text);
    expect(m.subject).toBe('Código ✓');
  });

  it('authenticates as the configured user', async () => {
    const logs = new LogCapture();
    const mailer = createMailer(
      smtpConfig({ smtpUser: 'custodia', smtpPassword: 'pw-canary-4417' }),
      createLogger('trace', logs),
    );
    await mailer.send(SPANISH);
    await mailer.close();
    expect((await smtp.waitFor()).user).toBe('custodia');
    expect(logs.text()).not.toContain('pw-canary-4417');
  });

  it('logs the message id and the outcome, never the recipient, subject or body', async () => {
    const logs = new LogCapture();
    const mailer = createMailer(smtpConfig(), createLogger('trace', logs));
    await mailer.send(CANARY);
    await mailer.close();
    const m = await smtp.waitFor();

    const lines = logs.lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    const sent = lines.find((l) => l['msg'] === 'mail sent');
    expect(sent).toBeDefined();
    expect(typeof sent?.['messageId']).toBe('string');
    expect(m.headers['message-id']).toContain(String(sent?.['messageId']));
    for (const canary of CANARY_VALUES) expect(logs.text()).not.toContain(canary);
  });

  it('rejects a refused recipient with an error and logs that hold no address and no body', async () => {
    // The server's reply quotes the address, as Postfix does: nodemailer's own error carries it.
    smtp.rejectNext(1, 'rcpt');
    const raw = createTransport({ host: smtp.host, port: smtp.port, secure: false });
    const rawError = await rejection(raw.sendMail({ from: 'a@localhost', ...CANARY }));
    raw.close();
    expect(rawError.message).toContain('rcpt-canary-7731');

    smtp.rejectNext(1, 'rcpt');
    const logs = new LogCapture();
    const mailer = createMailer(smtpConfig(), createLogger('trace', logs));
    const error = await rejection(mailer.send(CANARY));
    expect(error.message).toBe('mail delivery failed');
    expect(error).toBeInstanceOf(MailDeliveryError);
    expect(error).toMatchObject({ code: 'EENVELOPE' });
    expect(error.cause).toBeInstanceOf(SmtpFailure);
    expect(error.cause).toMatchObject({ code: 'EENVELOPE', responseCode: 550 });
    const shown = everythingShown(error);
    for (const canary of CANARY_VALUES) {
      expect(shown).not.toContain(canary);
      expect(logs.text()).not.toContain(canary);
    }
    const failed = logs.lines
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .find((l) => l['msg'] === 'mail delivery failed');
    expect(failed).toMatchObject({ code: 'EENVELOPE', responseCode: 550 });

    // The mailer is not broken by a failure.
    await mailer.send(SPANISH);
    await mailer.close();
    expect(smtp.messages.map((m) => m.to)).toEqual([[SPANISH.to]]);
  });

  it('rejects a refused message (DATA) likewise', async () => {
    smtp.rejectNext(1, 'data');
    const logs = new LogCapture();
    const mailer = createMailer(smtpConfig(), createLogger('trace', logs));
    const error = await rejection(mailer.send(CANARY));
    await mailer.close();
    expect(error.message).toBe('mail delivery failed');
    expect(error.cause).toMatchObject({ code: 'EMESSAGE', responseCode: 554 });
    const shown = everythingShown(error);
    for (const canary of CANARY_VALUES) {
      expect(shown).not.toContain(canary);
      expect(logs.text()).not.toContain(canary);
    }
    expect(smtp.messages).toEqual([]);
  });

  it('rejects when no server listens, naming neither address nor content', async () => {
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const { port } = probe.address() as AddressInfo;
    await new Promise<void>((resolve) => probe.close(() => resolve()));

    const mailer = createMailer(smtpConfig({ smtpPort: String(port) }), createLogger('silent'));
    const error = await rejection(mailer.send(CANARY));
    await mailer.close();
    expect(error.message).toBe('mail delivery failed');
    expect((error.cause as SmtpFailure).code).toMatch(/^E[A-Z]+$/);
    for (const canary of CANARY_VALUES) expect(everythingShown(error)).not.toContain(canary);
  });

  it('refuses a list of recipients or a header break before sending anything', async () => {
    const mailer = createMailer(smtpConfig(), createLogger('silent'));
    for (const message of [
      { ...CANARY, to: `${CANARY.to}, other@example.org` },
      { ...CANARY, to: `${CANARY.to};other@example.org` },
      { ...CANARY, to: `other,${CANARY.to}` },
      { ...CANARY, to: `Lucía <${CANARY.to}>` },
      { ...CANARY, to: `${CANARY.to}\r\nBcc: other@example.org` },
      { ...CANARY, subject: `${CANARY.subject}\r\nBcc: other@example.org` },
    ]) {
      const error = await rejection(mailer.send(message));
      for (const canary of CANARY_VALUES) expect(everythingShown(error)).not.toContain(canary);
    }
    await mailer.send(SPANISH);
    await mailer.close();
    await smtp.waitFor();
    expect(smtp.messages.map((m) => m.to)).toEqual([[SPANISH.to]]);
  });

  it('refuses to send once closed', async () => {
    const mailer = createMailer(smtpConfig(), createLogger('silent'));
    await mailer.close();
    expect((await rejection(mailer.send(SPANISH))).message).toBe('mailer is closed');
    expect(smtp.messages).toEqual([]);
  });

  it('waitFor rejects with a clear error when nothing matching arrives', async () => {
    const error = await rejection(smtp.waitFor((m) => m.to.includes('nobody@example.org'), 50));
    expect(error.message).toMatch(/no matching message .* within 50 ms/);
  });
});

describe('transportOptions', () => {
  const options = (flags: ConfigInput) => transportOptions(loadConfig(flags, {}));

  it.each([
    'mail.example.org',
    '10.0.0.1',
    '192.168.1.25',
    '::2',
    '127.example.org',
    'localhost.example.org',
  ])('requires STARTTLS to %s', (host) => {
    const o = options({ smtpHost: host });
    expect(o).toMatchObject({ host, port: 587, secure: false, requireTLS: true });
  });

  it.each(['127.0.0.1', '127.10.20.30', '::1', 'localhost', 'LOCALHOST', '::ffff:127.0.0.1'])(
    'allows plain SMTP to the loopback host %s',
    (host) => {
      expect(options({ smtpHost: host })).toMatchObject({ host, secure: false, requireTLS: false });
    },
  );

  it('uses implicit TLS when smtpSecure is set, without STARTTLS', () => {
    expect(
      options({ smtpHost: 'mail.example.org', smtpPort: '465', smtpSecure: 'true' }),
    ).toMatchObject({ port: 465, secure: true, requireTLS: false });
  });

  it('authenticates only when a user and password are configured, and never reads files', () => {
    const plain = options({ smtpHost: 'mail.example.org' });
    expect(plain.auth).toBeUndefined();
    expect(plain).toMatchObject({ disableFileAccess: true, disableUrlAccess: true });
    const withAuth = options({
      smtpHost: 'mail.example.org',
      smtpUser: 'custodia',
      smtpPassword: 'pw',
    });
    expect(withAuth.auth).toEqual({ user: 'custodia', pass: 'pw' });
  });

  it('throws when no SMTP host is configured', () => {
    expect(() => options({})).toThrow('no SMTP host is configured');
  });
});

describe('createMailer without an SMTP host (the outbox)', () => {
  const config = () => loadConfig({ dataDir }, {});

  it('writes each message as a private file that readOutbox reads back', async () => {
    const mailer = createMailer(config(), createLogger('silent'));
    await mailer.send(SPANISH);
    await mailer.close();

    const dir = path.join(dataDir, 'outbox');
    expect((await stat(dir)).mode & 0o777).toBe(0o700);
    const names = await readdir(dir);
    expect(names).toHaveLength(1);
    const name = names[0]!;
    expect(name).toMatch(/^\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d-\d{3}Z-[0-9a-f-]{36}\.eml$/);
    const file = path.join(dir, name);
    expect((await stat(file)).mode & 0o777).toBe(0o600);

    expect(await readOutbox(dataDir)).toEqual([{ file, ...SPANISH }]);
    const content = await readFile(file, 'utf8');
    const head = content.slice(0, content.indexOf('\r\n\r\n'));
    expect(head).toContain(`To: ${SPANISH.to}\r\n`);
    expect(head).toContain('From: Custodia <no-reply@localhost>\r\n');
    expect(head).toContain(`Subject: ${SPANISH.subject}\r\n`);
    expect(head).toMatch(/\r\nDate: \w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d \+0000\r\n/);
    expect(head).toContain(`Message-ID: <${name.slice(25, -4)}@localhost>`);
    expect(head).toContain('Content-Type: text/plain; charset=utf-8');
  });

  it('keeps the order of sending and leaves no temporary files', async () => {
    const mailer = createMailer(config(), createLogger('silent'));
    for (let i = 0; i < 5; i += 1) await mailer.send({ ...SPANISH, subject: `Código ${i}` });
    await mailer.close();
    const entries = await readOutbox(dataDir);
    expect(entries.map((e) => e.subject)).toEqual([0, 1, 2, 3, 4].map((i) => `Código ${i}`));
    expect(
      (await readdir(path.join(dataDir, 'outbox'))).filter((n) => !n.endsWith('.eml')),
    ).toEqual([]);
  });

  it('finds nothing when there is no outbox', async () => {
    expect(await readOutbox(dataDir)).toEqual([]);
  });

  it('makes an existing outbox directory private', async () => {
    await mkdir(path.join(dataDir, 'outbox'), { mode: 0o755 });
    await chmod(path.join(dataDir, 'outbox'), 0o755);
    const mailer = createMailer(config(), createLogger('silent'));
    await mailer.send(SPANISH);
    expect((await stat(path.join(dataDir, 'outbox'))).mode & 0o777).toBe(0o700);
  });

  it('logs the message id, never the recipient, subject or body', async () => {
    const logs = new LogCapture();
    const mailer = createMailer(config(), createLogger('trace', logs));
    await mailer.send(CANARY);
    const [entry] = await readOutbox(dataDir);
    expect(entry).toMatchObject(CANARY);
    const written = logs.lines
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .find((l) => l['msg'] === 'mail written to the outbox');
    expect(entry?.file).toContain(String(written?.['messageId']));
    for (const canary of CANARY_VALUES) expect(logs.text()).not.toContain(canary);
  });

  it('rejects without the address or body when the outbox cannot be written', async () => {
    await writeFile(path.join(dataDir, 'outbox'), 'not a directory');
    const logs = new LogCapture();
    const mailer = createMailer(config(), createLogger('trace', logs));
    const error = await rejection(mailer.send(CANARY));
    expect(error.message).toBe('mail could not be written to the outbox');
    expect(error).toBeInstanceOf(MailDeliveryError);
    expect(error instanceof MailDeliveryError ? error.code : undefined).toMatch(/^E[A-Z]+$/);
    for (const canary of CANARY_VALUES) {
      expect(everythingShown(error)).not.toContain(canary);
      expect(logs.text()).not.toContain(canary);
    }
  });

  it('refuses a list of recipients', async () => {
    const mailer = createMailer(config(), createLogger('silent'));
    await rejection(mailer.send({ ...SPANISH, to: 'a@example.org,b@example.org' }));
    expect(await readOutbox(dataDir)).toEqual([]);
  });
});

describe('the test SMTP server decoder', () => {
  const decode = (lines: string[]) =>
    decodeMessage(Buffer.from(`${lines.join('\r\n')}\r\n`, 'utf8'));

  it('joins encoded words split inside a character and drops the space between them', () => {
    // "señal ✓" in UTF-8, base64, split inside the two-byte "ñ" and the three-byte check mark.
    const bytes = Buffer.from('señal ✓', 'utf8');
    const a = bytes.subarray(0, 3).toString('base64');
    const b = bytes.subarray(3, 9).toString('base64');
    const c = bytes.subarray(9).toString('base64');
    const m = decode([
      `Subject: =?UTF-8?B?${a}?=\r\n =?utf-8?B?${b}?= =?UTF-8?B?${c}?= y más`,
      '',
      'x',
    ]);
    expect(m.headers['subject']).toBe('señal ✓ y más');
  });

  it('decodes Q words in another charset and keeps plain text around them', () => {
    const m = decode(['Subject: Re: =?ISO-8859-1?Q?Espa=F1a_hoy?= (2)', '', 'x']);
    expect(m.headers['subject']).toBe('Re: España hoy (2)');
  });

  it('decodes quoted-printable soft breaks, escapes and trailing padding', () => {
    const m = decode([
      'Content-Type: text/plain; charset="utf-8"',
      'Content-Transfer-Encoding: Quoted-Printable',
      '',
      'C=C3=B3digo: 12=',
      '3456   ',
      'a=3Db',
    ]);
    expect(m.text).toBe('Código: 123456\na=b');
  });

  it('takes the text/plain part of a multipart message', () => {
    const m = decode([
      'Content-Type: multipart/alternative; boundary="b1"',
      '',
      'preamble',
      '--b1',
      'Content-Type: text/html; charset=utf-8',
      '',
      '<p>no</p>',
      '--b1',
      'Content-Type: text/plain; charset=utf-8',
      'Content-Transfer-Encoding: base64',
      '',
      Buffer.from('sí\nsegunda línea', 'utf8').toString('base64'),
      '--b1--',
      'epilogue',
    ]);
    expect(m.text).toBe('sí\nsegunda línea');
  });

  it('refuses what it cannot decode rather than guess', () => {
    expect(() => decode(['Content-Type: text/html', '', '<p>x</p>'])).toThrow('no text/plain part');
    expect(() => decode(['Content-Transfer-Encoding: x-uuencode', '', 'x'])).toThrow(
      'unsupported transfer encoding',
    );
    expect(() => decode(['Content-Type: text/plain; charset=x-klingon', '', 'x'])).toThrow(
      'unsupported charset',
    );
  });
});
