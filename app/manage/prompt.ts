import { createInterface } from 'node:readline';

let piped: Promise<string[]> | undefined;

/** Lines of a piped stdin, read once (`printf 'name\npassword\n' | herd login`). */
function pipedLines(): Promise<string[]> {
  piped ??= new Promise((resolve, reject) => {
    let text = '';
    process.stdin.setEncoding('utf8');
    process.stdin.on('data', (d) => {
      text += d;
    });
    process.stdin.on('end', () => resolve(text.split(/\r?\n/)));
    process.stdin.on('error', reject);
  });
  return piped;
}
let pipedAt = 0;

/**
 * Asks on the terminal (stderr), without echo unless `echo`; from a pipe, takes the next line of stdin.
 * Ctrl-C gives up.
 */
export async function readSecret(prompt: string, options: { echo?: boolean } = {}): Promise<string> {
  if (!process.stdin.isTTY) {
    const line = (await pipedLines())[pipedAt++];
    if (line === undefined) throw new Error(`stdin ended before the ${prompt.replace(/:\s*$/, '')}`);
    return line;
  }
  return new Promise((resolve, reject) => {
    const rl = createInterface({ input: process.stdin, output: process.stderr, terminal: true });
    const out = rl as unknown as { _writeToOutput: (s: string) => void };
    const write = out._writeToOutput.bind(rl);
    let asked = false;
    // readline echoes what is typed through _writeToOutput: let the prompt through, not the secret.
    out._writeToOutput = (s: string) => {
      if (!asked || options.echo) write(s);
    };
    rl.on('SIGINT', () => {
      rl.close();
      reject(new Error('cancelled'));
    });
    rl.question(prompt, (answer) => {
      if (!options.echo) process.stderr.write('\n');
      rl.close();
      resolve(answer);
    });
    asked = true;
  });
}
