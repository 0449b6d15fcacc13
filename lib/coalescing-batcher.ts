/**
 * Runs items in batches the way a database's group commit does: an item submitted while no batch is in flight
 * goes at the next turn of the event loop, with whatever else arrived in that turn; items submitted while
 * `maxInFlight` batches are in flight wait and go together once one returns (at most `maxBatch` per batch). Alone,
 * an item waits for nothing; under load, one round trip serves many.
 *
 * `run` answers one settled result per item, in the items' order (a failure can be an item's own).
 */
export class CoalescingBatcher<I, O> {
  private readonly waiting: Array<{ item: I; resolve: (o: O) => void; reject: (err: unknown) => void }> = [];
  private inFlight = 0;
  private scheduled = false;

  constructor(
    private readonly run: (items: I[]) => Promise<PromiseSettledResult<O>[]>,
    private readonly options: { maxBatch: number; maxInFlight: number },
  ) {}

  submit(item: I): Promise<O> {
    return new Promise<O>((resolve, reject) => {
      this.waiting.push({ item, resolve, reject });
      if (!this.scheduled && this.inFlight < this.options.maxInFlight) {
        this.scheduled = true;
        setImmediate(() => {
          this.scheduled = false;
          this.pump();
        });
      }
    });
  }

  private pump(): void {
    while (this.inFlight < this.options.maxInFlight && this.waiting.length) {
      const batch = this.waiting.splice(0, this.options.maxBatch);
      this.inFlight++;
      this.run(batch.map((b) => b.item))
        .then(
          (results) =>
            batch.forEach((b, i) => {
              const r = results[i];
              if (r?.status === 'fulfilled') b.resolve(r.value);
              else b.reject(r ? r.reason : new Error('batch answered fewer results than items'));
            }),
          (err: unknown) => {
            for (const b of batch) b.reject(err);
          },
        )
        .finally(() => {
          this.inFlight--;
          this.pump();
        });
    }
  }
}
