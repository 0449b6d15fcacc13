/** A page draws into `main` and returns what to undo when the user leaves it. */
export type Page = (
  main: HTMLElement,
  params: string[],
  query: URLSearchParams,
) => (() => void) | undefined | Promise<(() => void) | undefined>;
