/** A column of a table: its heading and how to get the cell from a row. */
export interface Column<T> {
  header: string;
  value: (row: T) => unknown;
  /** Numbers align right. */
  align?: 'left' | 'right';
}

/** How a value shows in a table cell: `-` for nothing, yes/no, numbers as they are, objects compact JSON. */
export function cell(value: unknown): string {
  if (value === null || value === undefined || value === '') return '-';
  if (typeof value === 'boolean') return value ? 'yes' : 'no';
  if (typeof value === 'number')
    return Number.isInteger(value) ? String(value) : String(Math.round(value * 100) / 100);
  if (typeof value === 'string') return value.replace(/[\r\n\t]+/g, ' ');
  return JSON.stringify(value);
}

/** An aligned text table: a heading line, then one line per row, columns two spaces apart, no trailing blanks. */
export function table<T>(rows: readonly T[], columns: readonly Column<T>[]): string {
  const cells = rows.map((row) => columns.map((c) => cell(c.value(row))));
  const widths = columns.map((c, i) => Math.max(c.header.length, ...cells.map((r) => r[i].length)));
  const line = (values: string[]) =>
    values
      .map((v, i) => (columns[i].align === 'right' ? v.padStart(widths[i]) : v.padEnd(widths[i])))
      .join('  ')
      .trimEnd();
  return `${[line(columns.map((c) => c.header)), ...cells.map(line)].join('\n')}\n`;
}

/** One object as a two-column table of its fields (nested lists and objects as compact JSON). */
export function fields(object: Record<string, unknown>): string {
  return table(Object.entries(object), [
    { header: 'FIELD', value: ([key]) => key },
    { header: 'VALUE', value: ([, value]) => value },
  ]);
}

export function json(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}
