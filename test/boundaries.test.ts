import { rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { ESLint } from 'eslint';
import { describe, expect, it } from 'vitest';

const root = path.resolve(import.meta.dirname, '..');

let probe = 0;

/**
 * Lints source text placed at the named path with the project's own configuration (the file
 * must exist for the type-aware rules, so it is written there for the moment and removed).
 */
async function restrictedImports(
  file: string,
  code: string,
  rule = 'no-restricted-imports',
): Promise<string[]> {
  probe += 1;
  const target = path.join(root, file.replace(/x\.ts$/, `lint-probe-${process.pid}-${probe}.ts`));
  await writeFile(target, code);
  try {
    const [result] = await new ESLint({ cwd: root }).lintFiles([target]);
    const messages = result?.messages ?? [];
    expect(messages.filter((m) => m.fatal === true)).toEqual([]);
    return messages.filter((m) => m.ruleId === rule).map((m) => m.message);
  } finally {
    await rm(target, { force: true });
  }
}

describe('module boundaries enforced by lint', () => {
  it('forbids cipher primitives outside platform/crypto', async () => {
    const code =
      "import { createCipheriv } from 'node:crypto';\nexport const c = createCipheriv;\n";
    for (const file of [
      'src/modules/customers/x.ts',
      'src/platform/http/x.ts',
      'src/modules/audit/x.ts',
    ]) {
      expect(await restrictedImports(file, code), file).toEqual([
        expect.stringContaining('cipher primitives'),
      ]);
    }
    expect(await restrictedImports('src/platform/crypto/x.ts', code)).toEqual([]);
  });

  it('forbids password hashing and TOTP libraries outside platform/crypto', async () => {
    for (const code of [
      "import { hash } from '@node-rs/argon2';\nexport const h = hash;\n",
      "import { verifySync } from 'otplib';\nexport const v = verifySync;\n",
    ]) {
      expect(await restrictedImports('src/modules/staff/x.ts', code), code).toEqual([
        expect.stringContaining('cipher primitives'),
      ]);
      expect(await restrictedImports('src/platform/crypto/x.ts', code), code).toEqual([]);
    }
  });

  it('forbids the customer store and the key store outside the customers vault', async () => {
    const code =
      "import { findCustomer } from '../customers/customers.store.js';\nimport { insertKeys } from '../customers/customers.keys.js';\nexport const f = [findCustomer, insertKeys];\n";
    const messages = await restrictedImports('src/modules/erasure/x.ts', code);
    expect(messages.filter((m) => m.includes('Only the customers vault'))).toHaveLength(2);
    const inside = await restrictedImports(
      'src/modules/customers/x.ts',
      "import { findCustomer } from './customers.store.js';\nexport const f = findCustomer;\n",
    );
    expect(inside).toEqual([]);
  });

  it("forbids another module's internals; its index is the way in", async () => {
    const internal = await restrictedImports(
      'src/modules/erasure/x.ts',
      "import { appendAudit } from '../audit/audit.service.js';\nexport const a = appendAudit;\n",
    );
    expect(internal).toEqual([expect.stringContaining('index.ts')]);
    const viaIndex = await restrictedImports(
      'src/modules/erasure/x.ts',
      "import { appendAudit } from '../audit/index.js';\nexport const a = appendAudit;\n",
    );
    expect(viaIndex).toEqual([]);
    const fromPlatform = await restrictedImports(
      'src/platform/http/x.ts',
      "import { loadPurposes } from '../../modules/purposes/purposes.service.js';\nexport const l = loadPurposes;\n",
    );
    expect(fromPlatform).toEqual([expect.stringContaining('index.ts')]);
  });

  it('lets platform parts import each other, never a module past its index', async () => {
    const sibling = await restrictedImports(
      'src/platform/http/x.ts',
      "import { EVERY_WORKSPACE } from '../db/row-scope.js';\nexport const e = EVERY_WORKSPACE;\n",
    );
    expect(sibling).toEqual([]);
  });

  it('forbids application code the unscoped store handle; tests may inspect with it', async () => {
    const code =
      "import type { AppContext } from '../../platform/context.js';\nexport const f = (ctx: AppContext) => [ctx.data.db, ctx.keys.db];\n";
    for (const file of ['src/modules/customers/x.ts', 'src/platform/http/x.ts']) {
      expect(await restrictedImports(file, code, 'no-restricted-syntax'), file).toEqual([
        expect.stringContaining('row scope'),
        expect.stringContaining('row scope'),
      ]);
    }
    expect(
      await restrictedImports('src/modules/customers/x.test.ts', code, 'no-restricted-syntax'),
    ).toEqual([]);
  });
});
