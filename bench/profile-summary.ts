import { readFileSync } from 'node:fs';
import path from 'node:path';

/**
 * Summarises a V8 .cpuprofile (from `npm run bench -- --cpu-prof <dir>` or `node --cpu-prof`):
 * self time by function and by area (a package, a Custodia source file, Node internals), and
 * inclusive time by function. `node dist/bench/profile-summary.js <file.cpuprofile> [top]`.
 */

interface CallFrame {
  readonly functionName: string;
  readonly url: string;
  readonly lineNumber: number;
}
interface ProfileNode {
  readonly id: number;
  readonly callFrame: CallFrame;
  readonly children?: readonly number[];
}
interface Profile {
  readonly nodes: readonly ProfileNode[];
  readonly startTime: number;
  readonly endTime: number;
  readonly samples?: readonly number[];
  readonly timeDeltas?: readonly number[];
}

function shortUrl(url: string): string {
  if (url === '') return '';
  const modules = url.lastIndexOf('node_modules/');
  if (modules !== -1) return url.slice(modules + 'node_modules/'.length);
  const dist = url.lastIndexOf('/dist/');
  if (dist !== -1) return url.slice(dist + '/dist/'.length);
  return url.replace(/^file:\/\//, '');
}

/** Where a frame's code lives: a package name, a Custodia file, node internals, or V8. */
function areaOf(frame: CallFrame): string {
  const url = frame.url;
  if (url === '') return frame.functionName.startsWith('(') ? frame.functionName : '(native)';
  const modules = url.lastIndexOf('node_modules/');
  if (modules !== -1) {
    const rest = url.slice(modules + 'node_modules/'.length).split('/');
    return rest[0]?.startsWith('@') === true ? `${rest[0]}/${rest[1] ?? ''}` : (rest[0] ?? url);
  }
  if (url.startsWith('node:')) {
    const internal = url.slice('node:'.length).split('/');
    return `node:${internal[0] === 'internal' ? (internal[1] ?? 'internal') : (internal[0] ?? '')}`;
  }
  return shortUrl(url);
}

/** Custodia's own compiled code, as opposed to packages, Node and V8. */
function isOwnCode(frame: CallFrame): boolean {
  return /\/dist\/(src|bench)\//.test(frame.url);
}

function frameKey(frame: CallFrame): string {
  const where = shortUrl(frame.url);
  const name = frame.functionName === '' ? '(anonymous)' : frame.functionName;
  return where === '' ? name : `${name}  ${where}:${frame.lineNumber + 1}`;
}

function top(map: Map<string, number>, n: number, total: number): string[] {
  return [...map]
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(
      ([k, v]) =>
        `${((100 * v) / total).toFixed(1).padStart(5)}%  ${(v / 1000).toFixed(0).padStart(6)} ms  ${k}`,
    );
}

export function summarise(file: string, n = 30): string {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const byId = new Map<number, ProfileNode>();
  const parent = new Map<number, number>();
  for (const node of profile.nodes) {
    byId.set(node.id, node);
    for (const c of node.children ?? []) parent.set(c, node.id);
  }
  const self = new Map<string, number>();
  const area = new Map<string, number>();
  const inclusive = new Map<string, number>();
  const owner = new Map<string, number>();
  const samples = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];
  let total = 0;
  let idle = 0;
  samples.forEach((id, i) => {
    // A sample's time is the gap to the next sample.
    const dt = Math.max(0, deltas[i + 1] ?? 0);
    const node = byId.get(id);
    if (node === undefined) return;
    total += dt;
    if (node.callFrame.functionName === '(idle)') idle += dt;
    const key = frameKey(node.callFrame);
    self.set(key, (self.get(key) ?? 0) + dt);
    const a = areaOf(node.callFrame);
    area.set(a, (area.get(a) ?? 0) + dt);
    const seen = new Set<string>();
    let ownerKey: string | undefined;
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const frame = byId.get(at)?.callFrame;
      if (frame === undefined) break;
      const k = frameKey(frame);
      if (ownerKey === undefined && isOwnCode(frame)) ownerKey = k;
      if (seen.has(k)) continue;
      seen.add(k);
      inclusive.set(k, (inclusive.get(k) ?? 0) + dt);
    }
    ownerKey ??= `(outside Custodia code) ${areaOf(node.callFrame)}`;
    owner.set(ownerKey, (owner.get(ownerKey) ?? 0) + dt);
  });
  const busy = total - idle;
  return [
    `${path.basename(file)}: ${(total / 1e6).toFixed(1)} s sampled, ${(busy / 1e6).toFixed(1)} s busy (${((100 * busy) / Math.max(total, 1)).toFixed(0)}%)`,
    '',
    'self time by area (% of all samples):',
    ...top(area, 20, total),
    '',
    'self time by function:',
    ...top(self, n, total),
    '',
    'inclusive time by function:',
    ...top(inclusive, n, total),
    '',
    'self time charged to the innermost Custodia (src/, bench/) function on the stack:',
    ...top(owner, n, total),
  ].join('\n');
}

const [, , file, count] = process.argv;
if (file === undefined) {
  process.stderr.write('usage: node dist/bench/profile-summary.js <file.cpuprofile> [top]\n');
  process.exit(2);
}
process.stdout.write(`${summarise(file, count === undefined ? 30 : Number(count))}\n`);
