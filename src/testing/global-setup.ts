/**
 * Says, once and visibly, whether the PostgreSQL half of the suite runs. In CI it must:
 * a CI run without CUSTODIA_TEST_PG_URL fails here rather than skipping silently.
 */
export default function setup(): void {
  const url = process.env['CUSTODIA_TEST_PG_URL'];
  if (url === undefined || url === '') {
    if (process.env['CI'] === 'true') {
      throw new Error(
        'CI=true but CUSTODIA_TEST_PG_URL is not set: PostgreSQL tests must not be skipped in CI',
      );
    }
    process.stderr.write(
      '\n*** CUSTODIA_TEST_PG_URL is not set: PostgreSQL tests are SKIPPED; only SQLite runs. ***\n' +
        '*** Set it, e.g. CUSTODIA_TEST_PG_URL=postgres://postgres@127.0.0.1:5432/postgres ***\n\n',
    );
  }
}
