/** Runs `work` every `everyMs`, never twice at once; `kick()` runs it again as soon as it is free. */
export class Loop {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = true;
  private onError: (err: unknown) => void = () => undefined;

  constructor(
    private readonly everyMs: number,
    private readonly work: () => Promise<unknown>,
  ) {}

  start(onError: (err: unknown) => void): void {
    this.onError = onError;
    this.stopped = false;
    this.schedule(0);
  }

  kick(): void {
    if (!this.stopped && !this.running) this.schedule(0);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }

  private schedule(ms: number): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.run(), ms);
    this.timer.unref();
  }

  private run(): void {
    if (this.stopped || this.running) return;
    this.running = this.work()
      .then(
        () => undefined,
        (err) => this.onError(err),
      )
      .finally(() => {
        this.running = undefined;
        if (!this.stopped) this.schedule(this.everyMs);
      });
  }
}
