/**
 * Collecting validation problems so that every mistake in a configuration or a set of
 * construct props is reported at once, each with the path of the offending field and
 * what would be valid.
 */

/** One problem: where it is (a dotted path such as `matrix.domain`) and what is wrong. */
export interface Problem {
  readonly path: string;
  readonly message: string;
}

/** Thrown when validation finds one or more problems; the message lists all of them. */
export class ValidationError extends Error {
  constructor(
    readonly problems: readonly Problem[],
    heading = "invalid configuration",
  ) {
    super(`${heading}:\n${problems.map((p) => `  - ${p.path}: ${p.message}`).join("\n")}`);
    this.name = "ValidationError";
  }
}

/** Accumulates problems; `throwIfAny` raises one ValidationError naming them all. */
export class Problems {
  private readonly found: Problem[] = [];

  add(path: string, message: string): void {
    this.found.push({ path, message });
  }

  /** Records a problem at `path` unless `ok` holds. */
  check(ok: boolean, path: string, message: string): void {
    if (!ok) this.add(path, message);
  }

  get list(): readonly Problem[] {
    return this.found;
  }

  throwIfAny(heading?: string): void {
    if (this.found.length > 0) throw new ValidationError(this.found, heading);
  }
}

const DNS_LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/;

/** A lower-case DNS name with at least two labels and no trailing dot. */
export function isDomainName(value: string): boolean {
  if (value.length > 253 || value.endsWith(".")) return false;
  const labels = value.split(".");
  return labels.length >= 2 && labels.every((l) => DNS_LABEL.test(l)) && !/^[0-9]+$/.test(labels[labels.length - 1]);
}

export const DOMAIN_RULE = "a lower-case DNS name such as example.com (letters, digits and dashes, no trailing dot)";

/** A TCP/UDP port number. */
export function isPort(value: number): boolean {
  return Number.isInteger(value) && value >= 1 && value <= 65535;
}

export const PORT_RULE = "an integer from 1 to 65535";

/** Identifiers used as name prefixes: lower-case letters, digits and dashes, starting with a letter. */
export function isResourceName(value: string, maxLength: number): boolean {
  return value.length <= maxLength && /^[a-z][a-z0-9-]*$/.test(value) && !value.endsWith("-");
}

/** Records a problem unless `value` is a name prefix of at most `maxLength` characters (see isResourceName). */
export function checkResourceName(problems: Problems, prop: string, value: string | undefined, maxLength: number): void {
  problems.check(
    value !== undefined && isResourceName(value, maxLength),
    prop,
    `must be at most ${maxLength} lower-case letters, digits and dashes, starting with a letter, got ${JSON.stringify(value)}`,
  );
}

/** Project ids prefix container names, which LXD limits to 63 characters. */
export const PROJECT_ID_MAX_LENGTH = 15;

export function isEmail(value: string): boolean {
  const at = value.lastIndexOf("@");
  return at > 0 && /^[A-Za-z0-9._%+-]+$/.test(value.slice(0, at)) && isDomainName(value.slice(at + 1).toLowerCase());
}
