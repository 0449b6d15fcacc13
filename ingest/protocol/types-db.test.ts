import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FIXTURE_TYPES_DB } from './test-fixtures.js';
import { loadTypesDb, TypesDb } from './types-db.js';

describe('types.db', () => {
  const dirs: string[] = [];
  afterAll(async () => {
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  });

  it("reads collectd's own file", async () => {
    const db = await loadTypesDb([FIXTURE_TYPES_DB]);
    expect(db.size).toBeGreaterThan(300);
    expect(db.get('load')).toEqual([
      { name: 'shortterm', dsType: 'gauge', min: 0, max: 5000 },
      { name: 'midterm', dsType: 'gauge', min: 0, max: 5000 },
      { name: 'longterm', dsType: 'gauge', min: 0, max: 5000 },
    ]);
    expect(db.get('if_octets')?.map((ds) => [ds.name, ds.dsType])).toEqual([
      ['rx', 'derive'],
      ['tx', 'derive'],
    ]);
    expect(db.get('virt_cpu_total')?.[0].max).toBeNaN();
  });

  it('parses as collectd does: comments, commas, case, bad lines skipped, later definitions win', () => {
    const db = new TypesDb();
    db.addText(
      [
        '# comment',
        'one   value:GAUGE:U:U',
        'two\trx:counter:0:U, tx:Derive:-5:1e3',
        'bad   value:FLOAT:0:1',
        'short v:GAUGE:0',
        'one   other:ABSOLUTE:0:U',
      ].join('\n'),
    );
    expect(db.get('one')).toEqual([{ name: 'other', dsType: 'absolute', min: 0, max: Number.NaN }]);
    expect(db.get('two')).toEqual([
      { name: 'rx', dsType: 'counter', min: 0, max: Number.NaN },
      { name: 'tx', dsType: 'derive', min: -5, max: 1000 },
    ]);
    expect([db.get('bad'), db.get('short')]).toEqual([undefined, undefined]);
  });

  it('checks value lists: unknown type, value count', () => {
    const db = new TypesDb();
    db.addText('load shortterm:GAUGE:0:5000 midterm:GAUGE:0:5000 longterm:GAUGE:0:5000');
    expect(db.check({ type: 'load', values: [1, 2, 3] })).toBeUndefined();
    expect(db.check({ type: 'load', values: [1] })).toBe('value-count');
    expect(db.check({ type: 'nope', values: [1] })).toBe('unknown-type');
  });

  it('takes extra files and directories after the default one', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'herd-types-'));
    dirs.push(dir);
    await writeFile(join(dir, 'a.db'), 'custom value:GAUGE:0:U\n');
    await writeFile(join(dir, 'b.db'), 'load value:GAUGE:0:U\n');
    const db = await loadTypesDb([FIXTURE_TYPES_DB, dir]);
    expect(db.get('custom')?.[0].name).toBe('value');
    expect(db.get('load')).toHaveLength(1);
    await expect(loadTypesDb([join(dir, 'missing.db')])).rejects.toThrow(
      /cannot read types.db .*missing.db: ENOENT/,
    );
  });
});
