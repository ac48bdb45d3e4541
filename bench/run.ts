import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import {
  BENCH_LOG_LEVEL,
  BENCH_RATE_LIMIT,
  creationBody,
  CUSTOMERS_PATH,
  isServerMessage,
  READ_PURPOSE,
  type RunnerMessage,
  type ServerArgs,
  type ServerMessage,
} from './protocol.js';

/**
 * `npm run bench`: the cost of Custodia's guarantees, as ratios against baselines measured on the
 * same machine in the same run. Every server is a child process; the load (autocannon) runs here.
 *
 *   R1  audited, decrypted reads per second / a bare Fastify route answering the same JSON size
 *   R2  encrypted creations per second / plaintext creations on the same engine and durability
 *       (against the faster of commit-per-request and group commit; the other ratio is R2')
 *   RSS peak resident memory of the Custodia server process
 */

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..', '..');
const serverScript = path.join(here, 'server.js');

const TARGET_R1 = 0.25;
const TARGET_R2 = 0.3;
const TARGET_RSS_MB = 250;
/** A phase with more failed or non-2xx responses than this share measured the wrong thing. */
const MAX_BAD_SHARE = 0.001;

const phaseNames = ['bare', 'floor', 'read', 'create', 'plain-commit', 'plain-group'] as const;
type PhaseName = (typeof phaseNames)[number];

interface Options {
  readonly duration: number;
  readonly warmup: number;
  /** Each phase's measured time is split into this many rounds, interleaved with the others. */
  readonly rounds: number;
  readonly connections: number;
  readonly customers: number;
  readonly phases: ReadonlySet<PhaseName>;
  /** Directory for per-phase CPU profiles of the Custodia server (read, create). */
  readonly cpuProf: string | undefined;
  /** Extra `node` flags for the Custodia server process (e.g. `--cpu-prof --cpu-prof-dir=d`). */
  readonly nodeArgs: readonly string[];
}

function positive(name: string, raw: string): number {
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name} must be a positive number`);
  return n;
}

function options(): Options {
  const { values } = parseArgs({
    options: {
      duration: { type: 'string', default: '10' },
      warmup: { type: 'string', default: '3' },
      rounds: { type: 'string', default: '2' },
      connections: { type: 'string', default: '50' },
      customers: { type: 'string', default: '1000' },
      only: { type: 'string' },
      'cpu-prof': { type: 'string' },
      'node-args': { type: 'string' },
    },
  });
  const phases = new Set<PhaseName>();
  for (const p of (values.only ?? phaseNames.join(',')).split(',')) {
    if (!(phaseNames as readonly string[]).includes(p)) {
      throw new Error(`--only takes a list of ${phaseNames.join(', ')}`);
    }
    phases.add(p as PhaseName);
  }
  return {
    duration: positive('duration', values.duration),
    warmup: positive('warmup', values.warmup),
    rounds: Math.round(positive('rounds', values.rounds)),
    connections: Math.round(positive('connections', values.connections)),
    customers: Math.round(positive('customers', values.customers)),
    phases,
    cpuProf: values['cpu-prof'] === undefined ? undefined : path.resolve(values['cpu-prof']),
    nodeArgs: (values['node-args'] ?? '').split(' ').filter((a) => a !== ''),
  };
}

function log(line: string): void {
  process.stderr.write(`[bench] ${line}\n`);
}

/** Reads one `Vm*` line of /proc/<pid>/status, in kB. */
function procStatusKb(pid: number, field: 'VmHWM' | 'VmRSS'): number | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status);
    return match?.[1] === undefined ? undefined : Number(match[1]);
  } catch {
    return undefined;
  }
}

/** Busy CPU time of the whole machine so far, in ms (/proc/stat; USER_HZ is 100 on Linux). */
function machineBusyMs(): number | undefined {
  try {
    const first = readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
    const [, user, nice, system, , , irq, softirq] = first.trim().split(/\s+/).map(Number);
    const busy = [user, nice, system, irq, softirq].reduce<number>((a, v) => a + (v ?? 0), 0);
    return Number.isFinite(busy) ? busy * 10 : undefined;
  } catch {
    return undefined;
  }
}

/** The filesystem a directory lives on; fsync on tmpfs is free, which would flatter durability. */
function filesystemOf(dir: string): string {
  try {
    let best = { mount: '', type: 'unknown' };
    for (const line of readFileSync('/proc/mounts', 'utf8').split('\n')) {
      const [, mount, type] = line.split(' ');
      if (mount === undefined || type === undefined) continue;
      const inside = dir === mount || dir.startsWith(mount.endsWith('/') ? mount : `${mount}/`);
      if (inside && mount.length >= best.mount.length) best = { mount, type };
    }
    return best.type;
  } catch {
    return 'unknown';
  }
}

/** A server under test in its own process, reached over loopback. */
class ServerProcess {
  readonly label: string;
  readonly child: ChildProcess;
  readonly port: number;
  readonly token: string | undefined;
  readonly logLines: string[];
  #peakRssKb = 0;
  #windowPeakKb = 0;
  #poll: NodeJS.Timeout;
  #messages: ServerMessage[];

  private constructor(
    label: string,
    child: ChildProcess,
    ready: { port: number; token?: string },
    logLines: string[],
    messages: ServerMessage[],
  ) {
    this.label = label;
    this.child = child;
    this.port = ready.port;
    this.token = ready.token;
    this.logLines = logLines;
    this.#messages = messages;
    this.#poll = setInterval(() => this.#sample(), 200);
    this.#poll.unref();
  }

  static async start(
    label: string,
    args: ServerArgs,
    nodeArgs: readonly string[] = [],
  ): Promise<ServerProcess> {
    const child = spawn(process.execPath, [...nodeArgs, serverScript, JSON.stringify(args)], {
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    });
    const logLines: string[] = [];
    const collect = (chunk: Buffer) => {
      for (const line of chunk.toString('utf8').split('\n')) if (line !== '') logLines.push(line);
    };
    child.stdout?.on('data', collect);
    child.stderr?.on('data', collect);
    const messages: ServerMessage[] = [];
    child.on('message', (m: unknown) => {
      if (isServerMessage(m)) messages.push(m);
    });
    const ready = await new Promise<{ port: number; token?: string }>((resolve, reject) => {
      child.on('message', (m: unknown) => {
        if (!isServerMessage(m)) return;
        if (m.type === 'ready') resolve(m);
        if (m.type === 'failed') reject(new Error(`${label} server failed: ${m.message}`));
      });
      child.once('exit', (code) =>
        reject(
          new Error(
            `${label} server exited (${code}) before it was ready:\n${logLines.join('\n')}`,
          ),
        ),
      );
    });
    return new ServerProcess(label, child, ready, logLines, messages);
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  #sample(): void {
    const rss = procStatusKb(this.pid, 'VmRSS');
    if (rss !== undefined && rss > this.#peakRssKb) this.#peakRssKb = rss;
    if (rss !== undefined && rss > this.#windowPeakKb) this.#windowPeakKb = rss;
  }

  /** The highest polled RSS since the last call, in kB; starts a new window. */
  windowPeakKb(): number {
    this.#sample();
    const peak = this.#windowPeakKb;
    this.#windowPeakKb = 0;
    return peak;
  }

  /** The process's peak resident set so far: the kernel's high-water mark, or polled RSS. */
  peakRssKb(): number {
    this.#sample();
    return Math.max(procStatusKb(this.pid, 'VmHWM') ?? 0, this.#peakRssKb);
  }

  /** Sends a request and waits for the first reply of the given type that arrives after it. */
  async #ask<T extends ServerMessage['type']>(
    message: RunnerMessage,
    reply: T,
  ): Promise<Extract<ServerMessage, { type: T }>> {
    const seen = this.#messages.length;
    this.child.send(message);
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      for (const m of this.#messages.slice(seen)) {
        if (m.type === 'failed') throw new Error(`${this.label} server failed: ${m.message}`);
        if (m.type === reply) return m as Extract<ServerMessage, { type: T }>;
      }
      await new Promise((r) => setTimeout(r, 5));
    }
    throw new Error(`${this.label}: no ${reply} reply`);
  }

  /** CPU time (user + system) the server process has used so far, in milliseconds. */
  async cpuMs(): Promise<number> {
    const m = await this.#ask({ type: 'cpu' }, 'cpu');
    return (m.user + m.system) / 1000;
  }

  async memory(): Promise<NodeJS.MemoryUsage> {
    return (await this.#ask({ type: 'memory' }, 'memory')).usage;
  }

  profileStart(): void {
    this.child.send({ type: 'profile-start' } satisfies RunnerMessage);
  }

  async profileStop(file: string): Promise<void> {
    await this.#ask({ type: 'profile-stop', file }, 'profile-saved');
  }

  async stop(): Promise<void> {
    clearInterval(this.#poll);
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = once(this.child, 'exit');
    this.child.send({ type: 'stop' } satisfies RunnerMessage);
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 15_000);
    await exited;
    clearTimeout(timer);
  }
}

interface Sample {
  readonly round: number;
  readonly ok: number;
  readonly non2xx: number;
  readonly errors: number;
  readonly timeouts: number;
  readonly durationSeconds: number;
  readonly requestsPerSecond: number;
  readonly serverCpuMs: number;
  /** CPU time of this process (the load generator) over the same interval. */
  readonly clientCpuMs: number;
  /** CPU time of everything else on the machine over the same interval (others' load). */
  readonly otherCpuMs: number | undefined;
  readonly latencyMs: { readonly p50: number; readonly p99: number; readonly mean: number };
  readonly statusCodes: Record<string, number>;
  /** Highest polled RSS of the server during the round, in MB. */
  readonly serverPeakRssMb: number;
}

interface PhaseResult {
  readonly name: PhaseName;
  readonly description: string;
  readonly samples: Sample[];
  /** 2xx responses per second over all rounds. */
  requestsPerSecond: number;
  /** Server CPU time (user + system) per 2xx response, in microseconds. */
  cpuUsPerRequest: number;
  failure: string | undefined;
}

type Request = autocannon.Request;

async function load(
  url: string,
  requests: Request[],
  connections: number,
  seconds: number,
): Promise<autocannon.Result> {
  return autocannon({ url, connections, duration: seconds, requests, timeout: 10 });
}

interface PhasePlan {
  readonly name: PhaseName;
  readonly description: string;
  readonly server: ServerProcess;
  /** Fresh requests for one run of the phase (creation bodies carry the tag). */
  readonly requests: (tag: string) => Request[];
}

async function warmUp(plan: PhasePlan, opts: Options): Promise<void> {
  log(`${plan.name}: warm-up ${opts.warmup} s`);
  const url = `http://127.0.0.1:${plan.server.port}`;
  await load(url, plan.requests(`${plan.name}-warm`), opts.connections, opts.warmup);
}

/** One measured run of a phase, with the server's CPU time over the same interval. */
async function measure(plan: PhasePlan, round: number, opts: Options): Promise<Sample> {
  const seconds = opts.duration / opts.rounds;
  const url = `http://127.0.0.1:${plan.server.port}`;
  const profiling = opts.cpuProf !== undefined && plan.server.label === 'custodia';
  if (profiling) plan.server.profileStart();
  const cpuBefore = await plan.server.cpuMs();
  plan.server.windowPeakKb();
  const clientBefore = process.cpuUsage();
  const machineBefore = machineBusyMs();
  log(`${plan.name}: round ${round}, ${seconds} s at ${opts.connections} connections`);
  const r = await load(url, plan.requests(`${plan.name}-${round}`), opts.connections, seconds);
  const client = process.cpuUsage(clientBefore);
  const machineAfter = machineBusyMs();
  const cpuAfter = await plan.server.cpuMs();
  if (profiling && opts.cpuProf !== undefined) {
    const file = path.join(opts.cpuProf, `custodia-${plan.name}-r${round}.cpuprofile`);
    await plan.server.profileStop(file);
    log(`${plan.name}: CPU profile written to ${file}`);
  }
  const statusCodes: Record<string, number> = {};
  for (const [code, stat] of Object.entries(r.statusCodeStats ?? {})) {
    statusCodes[code] = stat.count ?? 0;
  }
  return {
    round,
    ok: r['2xx'],
    non2xx: r.non2xx,
    errors: r.errors,
    timeouts: r.timeouts,
    durationSeconds: r.duration,
    requestsPerSecond: r.duration > 0 ? r['2xx'] / r.duration : 0,
    serverCpuMs: cpuAfter - cpuBefore,
    clientCpuMs: (client.user + client.system) / 1000,
    otherCpuMs:
      machineBefore === undefined || machineAfter === undefined
        ? undefined
        : Math.max(
            0,
            machineAfter -
              machineBefore -
              (cpuAfter - cpuBefore) -
              (client.user + client.system) / 1000,
          ),
    latencyMs: { p50: r.latency.p50, p99: r.latency.p99, mean: r.latency.mean },
    statusCodes,
    serverPeakRssMb: plan.server.windowPeakKb() / 1024,
  };
}

/** Totals over the rounds; a phase whose responses are not (almost all) 2xx is a failure. */
function summarise(result: PhaseResult): void {
  const sum = (f: (s: Sample) => number) => result.samples.reduce((a, s) => a + f(s), 0);
  const ok = sum((s) => s.ok);
  const bad = sum((s) => s.non2xx + s.errors);
  const seconds = sum((s) => s.durationSeconds);
  result.requestsPerSecond = seconds > 0 ? ok / seconds : 0;
  result.cpuUsPerRequest = ok > 0 ? (1000 * sum((s) => s.serverCpuMs)) / ok : 0;
  const all = ok + bad;
  const codes: Record<string, number> = {};
  for (const s of result.samples) {
    for (const [code, n] of Object.entries(s.statusCodes)) codes[code] = (codes[code] ?? 0) + n;
  }
  result.failure =
    all === 0
      ? 'no responses'
      : bad / all > MAX_BAD_SHARE
        ? `${bad} of ${all} responses failed or were not 2xx (status codes ${JSON.stringify(codes)}, ${sum((s) => s.errors)} errors, ${sum((s) => s.timeouts)} timeouts)`
        : undefined;
  if (result.failure !== undefined) log(`${result.name}: FAILED: ${result.failure}`);
}

function authHeaders(token: string | undefined): Record<string, string> {
  return token === undefined ? {} : { authorization: `Bearer ${token}` };
}

/** Unique creation bodies: a counter per tag, and every run of a phase has its own tag. */
function creationRequests(tag: string, token: string | undefined): Request[] {
  let n = 0;
  const headers = { ...authHeaders(token), 'content-type': 'application/json' };
  return [
    {
      method: 'POST',
      path: CUSTOMERS_PATH,
      headers,
      setupRequest: (req) => ({ ...req, body: creationBody(tag, (n += 1)) }),
    },
  ];
}

async function expectStatus(res: Response, status: number, what: string): Promise<unknown> {
  const text = await res.text();
  if (res.status !== status)
    throw new Error(`${what}: expected ${status}, got ${res.status}: ${text}`);
  return JSON.parse(text) as unknown;
}

/** Creates customers through the API, `concurrency` at a time; returns their ids. */
async function seedCustomers(
  base: string,
  token: string | undefined,
  count: number,
  concurrency: number,
): Promise<string[]> {
  const ids: string[] = [];
  let next = 0;
  const worker = async () => {
    while (next < count) {
      next += 1;
      const res = await fetch(`${base}${CUSTOMERS_PATH}`, {
        method: 'POST',
        headers: { ...authHeaders(token), 'content-type': 'application/json' },
        body: creationBody('seed', next),
      });
      const body = (await expectStatus(res, 201, 'seeding a customer')) as { id: string };
      ids.push(body.id);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return ids;
}

function readPath(id: string): string {
  return `${CUSTOMERS_PATH}/${id}?purpose=${READ_PURPOSE}`;
}

/** A read must come back decrypted; otherwise the phase would time something else. */
function checkDecrypted(body: unknown): void {
  const b = body as { identity?: { givenName?: unknown }; contact?: { email?: unknown } };
  if (b.identity?.givenName !== 'Lucía' || typeof b.contact?.email !== 'string') {
    throw new Error('the read did not return the decrypted identity and contact fields');
  }
}

function fmt(n: number, digits = 0): string {
  return n.toLocaleString('en-US', {
    minimumFractionDigits: digits,
    maximumFractionDigits: digits,
  });
}

function ratio(num: PhaseResult | undefined, den: PhaseResult | undefined): number | undefined {
  if (num === undefined || den === undefined) return undefined;
  if (num.failure !== undefined || den.failure !== undefined || den.requestsPerSecond === 0) {
    return undefined;
  }
  return num.requestsPerSecond / den.requestsPerSecond;
}

/** The same ratio from server CPU per request: less sensitive to other load on the machine. */
function cpuRatio(num: PhaseResult | undefined, den: PhaseResult | undefined): number | undefined {
  if (num === undefined || den === undefined || num.cpuUsPerRequest === 0) return undefined;
  return den.cpuUsPerRequest / num.cpuUsPerRequest;
}

function perRound(num: PhaseResult | undefined, den: PhaseResult | undefined): number[] {
  if (num === undefined || den === undefined) return [];
  return num.samples.flatMap((s, i) => {
    const d = den.samples[i]?.requestsPerSecond ?? 0;
    return d > 0 ? [s.requestsPerSecond / d] : [];
  });
}

function verdict(value: number | undefined, ok: (v: number) => boolean): string {
  if (value === undefined) return 'NOT MEASURED';
  return ok(value) ? 'met' : 'MISSED';
}

async function main(): Promise<number> {
  const opts = options();
  const started = Date.now();
  const loadBefore = os.loadavg();
  const workRoot = await mkdtemp(path.join(os.tmpdir(), 'custodia-bench-'));
  if (opts.cpuProf !== undefined) await mkdir(opts.cpuProf, { recursive: true });
  const cpus = os.cpus();
  const fsType = filesystemOf(workRoot);
  const settingsLines = [
    `node ${process.version} on ${os.platform()} ${os.arch()}, ${cpus.length} CPU(s): ${cpus[0]?.model ?? 'unknown'}; load average before ${loadBefore.map((l) => l.toFixed(2)).join(' ')}`,
    `load: autocannon in the runner process (pid ${process.pid}); each server in its own child process; 127.0.0.1 only`,
    `per phase: ${opts.warmup} s warm-up, then ${opts.duration} s measured in ${opts.rounds} interleaved round(s); ${opts.connections} connections; reads spread over ${opts.customers} customers`,
    `Custodia bench settings: logLevel=${BENCH_LOG_LEVEL}, rateLimitPerMinute=${BENCH_RATE_LIMIT} (limiter active, never reached)`,
    `stores: SQLite, WAL, synchronous=FULL, fresh directories under ${workRoot} (${fsType})`,
  ];
  if (opts.nodeArgs.length > 0) {
    settingsLines.push(`Custodia server started with node ${opts.nodeArgs.join(' ')}`);
  }
  if (opts.cpuProf !== undefined) {
    settingsLines.push(
      `CPU profiling of the Custodia server ON (${opts.cpuProf}): numbers are slowed`,
    );
  }
  for (const line of settingsLines) log(line);
  if (fsType === 'tmpfs' || fsType === 'ramfs') {
    log('WARNING: the data directory is on a memory filesystem; fsync costs nothing there');
  }
  if (loadBefore[0] !== undefined && loadBefore[0] > cpus.length / 2) {
    log(
      'WARNING: the machine is already busy; throughputs will be noisy (see the CPU cross-check)',
    );
  }

  const results = new Map<PhaseName, PhaseResult>();
  const servers: ServerProcess[] = [];
  let peakRssKb: number | undefined;
  let custodiaMemory: NodeJS.MemoryUsage | undefined;
  let seededRssMb: number | undefined;
  const peakRssOf: Record<string, number> = {};
  let readBytes: number | undefined;
  const serverLogs: Record<string, { lines: number; first: string[] }> = {};
  try {
    // Every server is started first; an idle one costs nothing while the others are measured.
    const plans: PhasePlan[] = [];
    let custodia: ServerProcess | undefined;
    let readRequests: Request[] = [];
    let readBody: unknown;
    if (
      opts.phases.has('read') ||
      opts.phases.has('floor') ||
      opts.phases.has('create') ||
      opts.phases.has('bare')
    ) {
      custodia = await ServerProcess.start(
        'custodia',
        { mode: 'custodia', dataDir: path.join(workRoot, 'custodia') },
        opts.nodeArgs,
      );
      servers.push(custodia);
      const base = `http://127.0.0.1:${custodia.port}`;
      log(
        `custodia: pid ${custodia.pid}, port ${custodia.port}; seeding ${opts.customers} customers`,
      );
      const ids = await seedCustomers(base, custodia.token, opts.customers, opts.connections);
      seededRssMb = custodia.windowPeakKb() / 1024;
      log(`custodia: peak RSS ${fmt(seededRssMb)} MB after start and seeding`);
      const headers = authHeaders(custodia.token);
      readRequests = ids.map((id) => ({ method: 'GET', path: readPath(id), headers }));
      const sample = await fetch(`${base}${readPath(ids[0] ?? '')}`, { headers });
      const sampleText = await sample.text();
      if (sample.status !== 200) throw new Error(`sample read: ${sample.status} ${sampleText}`);
      readBody = JSON.parse(sampleText) as unknown;
      readBytes = Buffer.byteLength(sampleText);
      checkDecrypted(readBody);
      await expectStatus(
        await fetch(`${base}${CUSTOMERS_PATH}`, {
          method: 'POST',
          headers: { ...headers, 'content-type': 'application/json' },
          body: creationBody('probe', 1),
        }),
        201,
        'sample creation',
      );
    }
    if (opts.phases.has('bare')) {
      const bare = await ServerProcess.start('bare', { mode: 'bare', body: readBody });
      servers.push(bare);
      const res = await fetch(`http://127.0.0.1:${bare.port}${readRequests[0]?.path ?? '/'}`);
      const text = await res.text();
      if (res.status !== 200 || Buffer.byteLength(text) !== readBytes) {
        throw new Error(`bare route: ${res.status}, ${Buffer.byteLength(text)} bytes`);
      }
      plans.push({
        name: 'bare',
        description: `bare Fastify GET, constant ${readBytes ?? 0}-byte JSON, no plugins`,
        server: bare,
        requests: () => readRequests,
      });
    }
    if (custodia !== undefined) {
      const server = custodia;
      if (opts.phases.has('floor')) {
        // Not part of any ratio: what Custodia's HTTP stack costs with no personal data at all.
        plans.push({
          name: 'floor',
          description: 'Custodia GET /api/v1/health (same plugins and hooks, no data, no audit)',
          server,
          requests: () => [{ method: 'GET', path: '/api/v1/health' }],
        });
      }
      if (opts.phases.has('read')) {
        plans.push({
          name: 'read',
          description: `Custodia GET ${CUSTOMERS_PATH}/{id}?purpose=${READ_PURPOSE} (audited, decrypted)`,
          server,
          requests: () => readRequests,
        });
      }
      if (opts.phases.has('create')) {
        plans.push({
          name: 'create',
          description: `Custodia POST ${CUSTOMERS_PATH} (encrypted, consents, blind index, audited)`,
          server,
          requests: (tag) => creationRequests(tag, server.token),
        });
      }
    }
    for (const [name, description] of [
      ['plain-commit', 'plaintext POST, one transaction + commit per request'],
      ['plain-group', 'plaintext POST, the same GroupCommit class batching requests'],
    ] as const) {
      if (!opts.phases.has(name)) continue;
      const plain = await ServerProcess.start(name, {
        mode: name,
        dataDir: path.join(workRoot, name),
      });
      servers.push(plain);
      await expectStatus(
        await fetch(`http://127.0.0.1:${plain.port}${CUSTOMERS_PATH}`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: creationBody('probe', 1),
        }),
        201,
        `${name} sample creation`,
      );
      plans.push({
        name,
        description,
        server: plain,
        requests: (tag) => creationRequests(tag, undefined),
      });
    }

    // Reads first, against the seeded customers only; then the creations. Within each group the
    // rounds interleave, so that a burst of other load hits a ratio's two sides alike.
    const groups = [
      plans.filter((p) => p.name === 'bare' || p.name === 'floor' || p.name === 'read'),
      plans.filter((p) => p.name !== 'bare' && p.name !== 'floor' && p.name !== 'read'),
    ];
    for (const group of groups) {
      for (const plan of group) {
        results.set(plan.name, {
          name: plan.name,
          description: plan.description,
          samples: [],
          requestsPerSecond: 0,
          cpuUsPerRequest: 0,
          failure: undefined,
        });
        await warmUp(plan, opts);
      }
      for (let round = 1; round <= opts.rounds; round += 1) {
        for (const plan of group) {
          results.get(plan.name)?.samples.push(await measure(plan, round, opts));
        }
      }
    }
    for (const r of results.values()) summarise(r);
    peakRssKb = custodia?.peakRssKb();
    custodiaMemory = await custodia?.memory();
    for (const s of servers) peakRssOf[s.label] = s.peakRssKb() / 1024;
  } finally {
    for (const s of servers) {
      await s.stop().catch(() => undefined);
      serverLogs[s.label] = { lines: s.logLines.length, first: s.logLines.slice(0, 5) };
    }
    await rm(workRoot, { recursive: true, force: true });
  }

  const seconds = (Date.now() - started) / 1000;
  const loadAfter = os.loadavg();
  const read = results.get('read');
  const create = results.get('create');
  const bare = results.get('bare');
  const commit = results.get('plain-commit');
  const group = results.get('plain-group');
  const r1 = ratio(read, bare);
  // R2 is taken against the faster (stricter) plaintext baseline; R2' against the other one.
  const usable = (p: PhaseResult | undefined) => p !== undefined && p.failure === undefined;
  const groupIsStricter =
    usable(group) &&
    (!usable(commit) || (group?.requestsPerSecond ?? 0) >= (commit?.requestsPerSecond ?? 0));
  const strict = groupIsStricter ? group : commit;
  const other = groupIsStricter ? commit : group;
  const r2 = ratio(create, strict);
  const r2Other = ratio(create, other);
  const baselineLabel = (p: PhaseResult | undefined) =>
    p === undefined
      ? 'plaintext'
      : p.name === 'plain-group'
        ? 'plaintext group-commit'
        : 'plaintext commit-per-request';
  const peakRssMb = peakRssKb === undefined ? undefined : peakRssKb / 1024;

  const out: string[] = [];
  out.push('');
  out.push('Custodia benchmark');
  for (const line of settingsLines) out.push(`  ${line}`);
  out.push(`  load average after ${loadAfter.map((l) => l.toFixed(2)).join(' ')}`);
  out.push('');
  const header = [
    'phase',
    'req/s',
    '2xx',
    'non-2xx',
    'errors',
    'p50 ms',
    'p99 ms',
    'CPU µs/req',
    'server CPU',
    'client CPU',
    'other CPU',
    'RSS MB',
    'what',
  ];
  const rows = phaseNames
    .map((n) => results.get(n))
    .filter((r): r is PhaseResult => r !== undefined)
    .map((r) => {
      const sum = (f: (s: Sample) => number) => r.samples.reduce((a, s) => a + f(s), 0);
      return [
        r.name + (r.failure === undefined ? '' : ' (FAILED)'),
        fmt(r.requestsPerSecond, 1),
        fmt(sum((s) => s.ok)),
        fmt(sum((s) => s.non2xx)),
        fmt(sum((s) => s.errors)),
        fmt(Math.max(...r.samples.map((s) => s.latencyMs.p50)), 1),
        fmt(Math.max(...r.samples.map((s) => s.latencyMs.p99)), 1),
        fmt(r.cpuUsPerRequest),
        `${fmt((100 * sum((s) => s.serverCpuMs)) / (1000 * sum((s) => s.durationSeconds)))}%`,
        `${fmt((100 * sum((s) => s.clientCpuMs)) / (1000 * sum((s) => s.durationSeconds)))}%`,
        `${fmt((100 * sum((s) => s.otherCpuMs ?? 0)) / (1000 * sum((s) => s.durationSeconds)))}%`,
        fmt(Math.max(...r.samples.map((s) => s.serverPeakRssMb))),
        r.description,
      ];
    });
  const widths = header.map((h, i) =>
    Math.max(h.length, ...rows.map((row) => row[i]?.length ?? 0)),
  );
  const line = (cells: string[]) =>
    cells
      .map((c, i) =>
        i === 0 || i === cells.length - 1 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0),
      )
      .join('  ')
      .trimEnd();
  out.push(line(header));
  out.push(line(widths.map((w) => '-'.repeat(w))));
  for (const row of rows) out.push(line(row));
  out.push(
    '(req/s = 2xx responses per second over all rounds; p50/p99 = worst round; CPU µs/req = server process user+system time per 2xx response; server / client / other CPU = share of one core used by the server process / by autocannon / by everything else on the machine; RSS MB = highest polled RSS of the server while measured)',
  );
  for (const r of results.values()) {
    if (r.failure !== undefined) out.push(`FAILED ${r.name}: ${r.failure}`);
  }
  for (const [label, logs] of Object.entries(serverLogs)) {
    if (logs.lines > 0) {
      out.push(`${label} server wrote ${logs.lines} log line(s); first: ${logs.first.join(' | ')}`);
    }
  }
  const busiest = Math.max(
    0,
    ...[...results.values()].map(
      (r) =>
        (100 * r.samples.reduce((a, x) => a + (x.otherCpuMs ?? 0), 0)) /
        (1000 *
          Math.max(
            r.samples.reduce((a, x) => a + x.durationSeconds, 0),
            1e-9,
          )),
    ),
  );
  if (busiest > 25) {
    out.push(
      `WARNING: other load on the machine took up to ${fmt(busiest)}% of a core during a phase; the throughput ratios are unreliable (trust the CPU cross-check more, or rerun on a quiet machine)`,
    );
  }
  const show = (v: number | undefined) => (v === undefined ? 'n/a' : v.toFixed(2));
  const rounds = (v: number[]) => (v.length > 1 ? `  [per round: ${v.map(show).join(', ')}]` : '');
  out.push('');
  out.push(
    `cross-check from server CPU per request (insensitive to other load; ignores waiting on fsync): R1cpu ${show(cpuRatio(read, bare))}, R2cpu ${show(cpuRatio(create, strict))}, R2'cpu ${show(cpuRatio(create, other))}`,
  );
  out.push('');
  out.push(
    `R1 (audited decrypted reads / bare route): ${show(r1)}  (target ≥ ${TARGET_R1}) ${verdict(r1, (v) => v >= TARGET_R1)}${rounds(perRound(read, bare))}`,
  );
  out.push(
    `R2 (encrypted creations / ${baselineLabel(strict)} baseline): ${show(r2)}  (target ≥ ${TARGET_R2}) ${verdict(r2, (v) => v >= TARGET_R2)}${rounds(perRound(create, strict))}`,
  );
  out.push(
    `R2' (encrypted creations / ${baselineLabel(other)} baseline): ${show(r2Other)}${rounds(perRound(create, other))}`,
  );
  const floor = results.get('floor');
  if (floor !== undefined && bare !== undefined && bare.requestsPerSecond > 0) {
    out.push(
      `floor (Custodia's HTTP stack with no data / bare route): ${show(floor.requestsPerSecond / bare.requestsPerSecond)}  (an upper bound for R1)`,
    );
  }
  out.push(
    `peak RSS of Custodia server: ${peakRssMb === undefined ? 'n/a' : fmt(peakRssMb)} MB  (target ≤ ${TARGET_RSS_MB} MB) ${verdict(peakRssMb, (v) => v <= TARGET_RSS_MB)}`,
  );
  const mb = (bytes: number) => fmt(bytes / 2 ** 20);
  if (custodiaMemory !== undefined) {
    const m = custodiaMemory;
    out.push(
      `  Custodia memory at the end: rss ${mb(m.rss)} MB, V8 heap ${mb(m.heapUsed)} of ${mb(m.heapTotal)} MB, external ${mb(m.external)} MB (array buffers ${mb(m.arrayBuffers)} MB)`,
    );
  }
  if (seededRssMb !== undefined) {
    out.push(`  Custodia peak RSS after start and seeding, before load: ${fmt(seededRssMb)} MB`);
  }
  out.push(
    `  peak RSS of every server (MB): ${Object.entries(peakRssOf)
      .map(([label, v]) => `${label} ${fmt(v)}`)
      .join(', ')}`,
  );
  out.push(`runtime: ${seconds.toFixed(1)} s`);
  process.stdout.write(`${out.join('\n')}\n`);

  // Only a complete, unprofiled run is the result of record; others are kept beside it.
  const complete =
    opts.phases.size === phaseNames.length &&
    opts.cpuProf === undefined &&
    opts.nodeArgs.length === 0;
  const resultsFile = path.join(root, '.bench', complete ? 'results.json' : 'results-partial.json');
  await mkdir(path.dirname(resultsFile), { recursive: true });
  const json = {
    at: new Date().toISOString(),
    complete,
    machine: {
      node: process.version,
      platform: `${os.platform()} ${os.arch()}`,
      cpus: cpus.length,
      cpuModel: cpus[0]?.model ?? null,
      memoryMb: Math.round(os.totalmem() / 2 ** 20),
      dataFilesystem: fsType,
      loadAverageBefore: loadBefore,
      loadAverageAfter: loadAfter,
    },
    settings: {
      durationSeconds: opts.duration,
      warmupSeconds: opts.warmup,
      rounds: opts.rounds,
      connections: opts.connections,
      customers: opts.customers,
      logLevel: BENCH_LOG_LEVEL,
      rateLimitPerMinute: Number(BENCH_RATE_LIMIT),
      cpuProfiling: opts.cpuProf !== undefined,
      readResponseBytes: readBytes ?? null,
    },
    phases: Object.fromEntries(results),
    ratios: {
      r1: r1 ?? null,
      r1PerRound: perRound(read, bare),
      r2: r2 ?? null,
      r2Baseline: strict?.name ?? null,
      r2PerRound: perRound(create, strict),
      r2Other: r2Other ?? null,
      r2OtherBaseline: other?.name ?? null,
      r1Cpu: cpuRatio(read, bare) ?? null,
      r2Cpu: cpuRatio(create, strict) ?? null,
      r2OtherCpu: cpuRatio(create, other) ?? null,
    },
    peakRssMb: peakRssMb ?? null,
    peakRssMbByServer: peakRssOf,
    custodiaPeakRssMbAfterSeeding: seededRssMb ?? null,
    custodiaMemoryAtEnd: custodiaMemory ?? null,
    targets: { r1: TARGET_R1, r2: TARGET_R2, peakRssMb: TARGET_RSS_MB },
    runtimeSeconds: seconds,
    serverLogs,
  };
  await writeFile(resultsFile, `${JSON.stringify(json, null, 2)}\n`);
  process.stdout.write(`raw numbers: ${path.relative(process.cwd(), resultsFile)}\n`);
  return [...results.values()].some((r) => r.failure !== undefined) ? 1 : 0;
}

if (!existsSync(serverScript)) {
  process.stderr.write(`missing ${serverScript}: run \`npm run bench\` (it builds first)\n`);
  process.exit(1);
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(
      `bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
    );
    process.exit(1);
  },
);
