/** Polls `check` until it returns true, or fails after `timeoutMs`. */
export async function waitFor(
  check: () => Promise<boolean> | boolean,
  timeoutMs = 10_000,
  everyMs = 100,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      if (await check()) return;
    } catch (err) {
      lastError = err;
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(`condition not met within ${timeoutMs} ms${lastError ? `: ${String(lastError)}` : ''}`);
}

/** Runs an InfluxQL query against a real InfluxDB and returns the first series' rows ([] when none). */
export async function influxQuery(influx: { url: string; db: string }, q: string): Promise<any[][]> {
  const res = await fetch(
    `${influx.url}/query?db=${encodeURIComponent(influx.db)}&epoch=ms&q=${encodeURIComponent(q)}`,
  );
  const body = (await res.json()) as {
    results: Array<{ series?: Array<{ values: any[][] }>; error?: string }>;
  };
  const result = body.results[0];
  if (result?.error) {
    if (/database not found/.test(result.error)) return [];
    throw new Error(result.error);
  }
  return result?.series?.[0]?.values ?? [];
}
