import { type ConfigError, loadConfig } from '../config.js';

/** The problems loadConfig lists for `env`, a line each; empty when it is valid. */
export function configProblems(env: NodeJS.ProcessEnv): string {
  try {
    loadConfig(env);
  } catch (err) {
    return (err as ConfigError).problems.join('\n');
  }
  return '';
}
