/** Shell helpers for the scripts the renderers write. */

/** `value` as one single-quoted POSIX shell word. */
export const shellQuote = (value: string): string => `'${value.replace(/'/g, `'\\''`)}'`;
