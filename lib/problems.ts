/**
 * Collecting validation problems so that every mistake in a configuration or a set of
 * construct props is reported at once, each with the path of the offending field and
 * what would be valid.
 */
import schema from "../schema/matrix-config.schema.json";

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
    super(`${heading}:\n${problems.map((p) => `  - ${capped(p.path, MAX_PATH_LENGTH)}: ${capped(p.message, MAX_MESSAGE_LENGTH)}`).join("\n")}`);
    this.name = "ValidationError";
  }
}

/** Longest problem line printed: a huge value in a file is never echoed in full. */
const MAX_MESSAGE_LENGTH = 400;
const MAX_PATH_LENGTH = 120;

function capped(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}… (${text.length} characters)`;
}

/** A value as a message quotes it: JSON, cut after 60 characters. */
export function quote(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  const length = typeof value === "string" ? value.length : text.length;
  return text.length <= 60 ? text : `${text.slice(0, 57)}…" (${length} characters)`;
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

  /** Records others' problems, renaming each path (e.g. a construct prop to the YAML field it came from). */
  addAll(problems: readonly Problem[], rename: (path: string) => string = (p) => p): void {
    for (const p of problems) this.add(rename(p.path), p.message);
  }

  get list(): readonly Problem[] {
    return this.found;
  }

  throwIfAny(heading?: string): void {
    if (this.found.length > 0) throw new ValidationError(this.found, heading);
  }
}

// The configuration schema states these rules once; the constructs use the same patterns.
const DOMAIN = new RegExp(schema.definitions.domain.pattern);
const EMAIL = new RegExp(schema.definitions.email.pattern);

/** A lower-case DNS name with at least two labels and no trailing dot. */
export function isDomainName(value: string): boolean {
  return typeof value === "string" && value.length <= 253 && DOMAIN.test(value);
}

export const DOMAIN_RULE: string = schema.definitions.domain.rule;

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

/** An e-mail address such as admin@example.com (no display name, no spaces or line breaks). */
export function isEmail(value: string): boolean {
  return typeof value === "string" && value.length <= 254 && EMAIL.test(value);
}

export const EMAIL_RULE: string = schema.definitions.email.rule;
