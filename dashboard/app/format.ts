const BINARY = ['', 'Ki', 'Mi', 'Gi', 'Ti', 'Pi'];

/** 1536 → "1.5 KiB"; `suffix` e.g. "B/s". */
export function bytes(value: number | null | undefined, suffix = 'B'): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return '–';
  let v = value;
  let i = 0;
  while (Math.abs(v) >= 1024 && i < BINARY.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(v >= 100 || i === 0 ? 0 : 1)} ${BINARY[i]}${suffix}`;
}

export function mib(value: number | null | undefined): string {
  return value === null || value === undefined ? '–' : bytes(value * 1024 * 1024);
}

export function percent(value: number | null | undefined): string {
  return value === null || value === undefined || !Number.isFinite(value) ? '–' : `${value.toFixed(1)} %`;
}

/** Whole numbers as they are, others with one decimal: vCPUs, VMs, GiB. */
export function amount(value: number): string {
  return Number.isInteger(value) ? String(value) : value.toFixed(1);
}

export function number(value: number | null | undefined, digits = 2): string {
  return value === null || value === undefined || !Number.isFinite(value) ? '–' : value.toFixed(digits);
}

/** "12 s ago", "3 min ago", or the date for anything older than a day. */
export function ago(time: string | number | null | undefined): string {
  if (time === null || time === undefined) return 'never';
  const ms = typeof time === 'number' ? time : Date.parse(time);
  if (!Number.isFinite(ms)) return '–';
  const s = Math.round((Date.now() - ms) / 1000);
  if (s < 0) return 'just now';
  if (s < 90) return `${s} s ago`;
  if (s < 5400) return `${Math.round(s / 60)} min ago`;
  if (s < 86_400) return `${Math.round(s / 3600)} h ago`;
  return new Date(ms).toLocaleString();
}

/** A scale for a graph's values: the unit to show and what to divide by, from the largest value. */
export function scaleFor(unit: string, max: number): { label: string; divisor: number } {
  if (unit === 'bytes/s' || unit === 'MiB') {
    const base = unit === 'MiB' ? 2 : 0;
    let i = base;
    let v = max;
    while (v >= 1024 * 2 && i < BINARY.length - 1) {
      v /= 1024;
      i++;
    }
    return { label: `${BINARY[i]}B${unit === 'bytes/s' ? '/s' : ''}`, divisor: 1024 ** (i - base) };
  }
  return { label: unit, divisor: 1 };
}
