/**
 * The self-hoster's configuration file: UTF-8 YAML (one document, plain data), validated against
 * schema/matrix-config.schema.json (ajv, every error at once, each rule quoted in words) plus
 * the cross-field rules a schema cannot express, most of them the constructs' own rule
 * functions reported under the file's field names (relay range, bridge name, networks, public
 * listeners, address collisions, secrets from the environment). The result maps onto the
 * props of MatrixStandaloneStack.
 */
import { createHash } from "crypto";
import * as fs from "fs";
import * as path from "path";
import type { ErrorObject, ValidateFunction } from "ajv";
import { LineCounter, Node, isMap, isScalar, isSeq, parseAllDocuments } from "yaml";
import { Problem, Problems, ValidationError, quote } from "./problems";
import { DEFAULT_DHCP_RANGE, HostProps, validateHostProps } from "./host";
import { INGRESS_PUBLIC_PORTS, PublicListener, TURN_DEFAULT_PORTS, TurnPorts, checkPublicListeners, checkTurnPorts } from "./rules";
import { validateElementConfigOptions } from "./render/element";
import { CONFIG_VALIDATOR_DIGEST, validateConfig } from "./config-validator.generated";
import schema from "../schema/matrix-config.schema.json";

export interface RawConfig {
  host: {
    id: string;
    ipv4_network_part: string;
    ipv6_prefix?: string;
    ipv6_subnet?: string;
    public_ipv4: string;
    external_ipv4?: string;
    public_ipv6?: string;
    network_name?: string;
    lxd?: {
      provider?: 1 | 3;
      address?: string;
      remote_name?: string;
      client_certificate_file?: string;
      client_key_file?: string;
      project?: string;
      storage_pool?: string;
      profiles?: string[];
      target?: string;
      image_server?: string;
    };
    consul?: { address?: string; datacenter?: string; dns_domain?: string; acl?: boolean };
  };
  modules?: {
    deploy?: boolean;
    ingress_proxy?: ModuleConfig;
    postgres?: ModuleConfig;
    wellknown?: ModuleConfig;
    coturn?: ModuleConfig & { listening_port?: number; tls_listening_port?: number; min_port?: number; max_port?: number };
  };
  project: {
    id: string;
    domain: string;
    turn_domain: string;
    admin: { username: string; email: string };
    smtp?: { host: string; port: number; username?: string; starttls?: boolean; ssl?: boolean; from?: string };
    default_country_code?: string;
    room_complexity?: number;
    allow_public_rooms_without_auth?: boolean;
    allow_public_rooms_over_federation?: boolean;
    element_footer_links?: { text: string; url: string }[];
    host_parts?: { synapse?: number; element?: number; synapse_admin?: number };
    synapse?: { version?: string; image?: string };
    element?: WebAppConfig;
    synapse_admin?: WebAppConfig;
  };
}

export interface ModuleConfig {
  host_part?: number;
  image?: string;
}

export interface WebAppConfig {
  version?: string;
  sha256?: string;
  url?: string;
  image?: string;
}

/** Host parts used when the file does not set them (ryo's for the modules). */
export const DEFAULT_HOST_PARTS = {
  ingress_proxy: 10,
  postgres: 13,
  coturn: 15,
  wellknown: 16,
  synapse: 20,
  element: 21,
  synapse_admin: 22,
} as const;

export const CONFIG_SCHEMA = schema;


/** How ajv compiles the schema, here and ahead of time (scripts/compile-config-schema.js). */
export const CONFIG_AJV = {
  // `rule` states in words what a pattern or format accepts; messages and the README quote it.
  options: { allErrors: true, strict: true, useDefaults: false, keywords: ["rule"] },
  formats: ["ipv4", "ipv6", "email"],
} as const;

/** Names the schema and compile settings; the precompiled validator records the one it was made from. */
export function configValidatorDigest(): string {
  return `sha256:${createHash("sha256").update(JSON.stringify({ ...CONFIG_AJV, schema })).digest("hex")}`;
}

let validator: ValidateFunction | undefined;

/**
 * The precompiled validator while it matches the schema, else the schema compiled now. Loading
 * ajv and compiling the schema costs about 50 ms, a fifth of a whole synth; a stale
 * precompiled validator only costs that time again, never a wrong answer.
 */
function compiled(): ValidateFunction {
  validator ??= CONFIG_VALIDATOR_DIGEST === configValidatorDigest() ? validateConfig : compileSchema();
  return validator;
}

function compileSchema(): ValidateFunction {
  // Required here, not imported: a synth with an up-to-date precompiled validator never loads ajv.
  const { default: Ajv } = require("ajv") as typeof import("ajv");
  const { default: addFormats } = require("ajv-formats") as typeof import("ajv-formats");
  const ajv = new Ajv({ ...CONFIG_AJV.options, keywords: [...CONFIG_AJV.options.keywords] });
  addFormats(ajv, [...CONFIG_AJV.formats]);
  return ajv.compile(schema);
}

const pathOf = (error: ErrorObject): string =>
  error.instancePath
    .split("/")
    .slice(1)
    .map((part) => (/^\d+$/.test(part) ? `[${part}]` : `.${part}`))
    .join("")
    .replace(/^\./, "") || "(top level)";

/** The schema node describing the value at an instance path (following $refs). */
function schemaAt(instancePath: string): any {
  let node: any = resolveRef(schema);
  for (const part of instancePath.split("/").slice(1)) {
    node = resolveRef(/^\d+$/.test(part) && node?.items ? node.items : node?.properties?.[part]);
  }
  return node;
}

function resolveRef(node: any): any {
  if (!node?.$ref) return node;
  const target = resolveRef((node.$ref as string).replace(/^#\//, "").split("/").reduce((n: any, p: string) => n?.[p], schema));
  // The referenced definition says what is valid; the property says what it is for.
  return { ...target, ...node, $ref: undefined, description: target?.description ?? node.description };
}

const TYPE_WORDS: Record<string, string> = {
  string: "text",
  integer: "a whole number",
  number: "a number",
  boolean: "true or false",
  object: "a mapping of settings (key: value lines)",
  array: "a list",
};

function typeName(value: unknown): string {
  if (value === null) return "nothing (null)";
  if (Array.isArray(value)) return "a list";
  if (typeof value === "object") return "a mapping";
  if (typeof value === "number") return `the number ${value}`;
  if (typeof value === "boolean") return `${value}`;
  return `the text ${quote(value)}`;
}

/** Where a secret that was written into the file belongs instead. */
function secretAdvice(at: string, key: string): string | undefined {
  if (!/pass(word)?|secret|token|api_?key|private_key/i.test(key)) return undefined;
  const variable = at.startsWith("project.smtp") ? "TF_VAR_smtp_password" : at.startsWith("project.admin") ? "TF_VAR_admin_password" : undefined;
  return variable
    ? `secrets never go into this file: remove it and export ${variable} before cdktf deploy`
    : "secrets never go into this file: the admin and SMTP passwords come from TF_VAR_admin_password and TF_VAR_smtp_password, every other secret is generated at deploy time";
}

function describe(error: ErrorObject, data: unknown): Problem {
  const at = pathOf(error);
  const value = error.instancePath.split("/").slice(1).reduce((v: any, p) => v?.[p], data);
  const got = value === undefined ? "" : `, got ${quote(value)}`;
  const node = schemaAt(error.instancePath);
  switch (error.keyword) {
    case "required": {
      const field = (error.params as { missingProperty: string }).missingProperty;
      return { path: at === "(top level)" ? field : `${at}.${field}`, message: "is required" };
    }
    case "additionalProperties": {
      const key = (error.params as { additionalProperty: string }).additionalProperty;
      const where = at === "(top level)" ? key : `${at}.${key}`;
      const allowed = Object.keys(node?.properties ?? {});
      return { path: where, message: secretAdvice(where, key) ?? `is not a known setting; valid keys here: ${allowed.join(", ")}` };
    }
    case "pattern":
    case "format":
      // Every pattern and format in the schema states its rule in words (checked by a test).
      return { path: at, message: `is not valid${got}: must be ${node?.rule ?? "as the configuration reference describes"}` };
    case "type": {
      const { type } = error.params as { type: string };
      return { path: at, message: `must be ${TYPE_WORDS[type] ?? type}, got ${typeName(value)}` };
    }
    case "minimum":
    case "maximum":
    case "exclusiveMinimum": {
      const range =
        node?.exclusiveMinimum !== undefined
          ? `above ${node.exclusiveMinimum}`
          : node?.maximum !== undefined
            ? `from ${node.minimum} to ${node.maximum}`
            : `of at least ${node?.minimum}`;
      return { path: at, message: `must be a ${node?.type === "integer" ? "whole number" : "number"} ${range}${got}` };
    }
    case "maxLength":
      return { path: at, message: `must be at most ${(error.params as { limit: number }).limit} characters, got ${String(value).length}` };
    case "minLength":
      return { path: at, message: "must not be empty" };
    default:
      return { path: at, message: `is not valid${got}` };
  }
}

/** Where a whole-file problem (encoding, YAML structure) is reported. */
const WHOLE_FILE = "(whole file)";
/** Aliases (*name) expanded before the file is refused: a few are normal, thousands are a resource attack. */
const MAX_ALIAS_COUNT = 100;

/** Plain words for the YAML parser's jargon; other errors keep the parser's own first sentence. */
const YAML_ERROR_WORDS: Record<string, string> = {
  TAB_AS_INDENT: "a tab is used for indentation; indent with spaces",
  BLOCK_AS_IMPLICIT_KEY: "a key and its value are not laid out as key: value on one line; check the indentation and the colon",
  MULTILINE_IMPLICIT_KEY: "a key is spread over several lines; a key and its colon go on one line",
  BAD_ALIAS: "an alias (*name) refers to an anchor (&name) that is not defined before it",
};

/** Parses YAML text into plain data, turning every parser problem into a Problem with its line. */
function parseYaml(text: string): { data: unknown; problems: Problem[] } {
  try {
    return parseYamlDocument(text);
  } catch (err) {
    if (!(err instanceof RangeError)) throw err;
    return { data: undefined, problems: [{ path: WHOLE_FILE, message: "is nested too deeply to be a configuration" }] };
  }
}

function parseYamlDocument(text: string): { data: unknown; problems: Problem[] } {
  const lineCounter = new LineCounter();
  const docs = parseAllDocuments(text.replace(/^\uFEFF/, ""), { uniqueKeys: false, lineCounter, prettyErrors: false, logLevel: "error" });
  const lineOf = (offset: number | undefined): number | string => (offset === undefined ? "?" : lineCounter.linePos(offset).line);
  const list = Array.isArray(docs) ? docs : [];
  if (list.length > 1) {
    const second = list[1].contents?.range[0] ?? list[1].range[0];
    return {
      data: undefined,
      problems: [{ path: `line ${lineOf(second)}`, message: `a second YAML document starts here (the file holds ${list.length}, separated by ---); the configuration is one document, so remove the extra ones` }],
    };
  }
  const doc = list[0];
  if (!doc || doc.contents === null || doc.contents === undefined) {
    return { data: undefined, problems: [{ path: WHOLE_FILE, message: "is empty; start from config/example.yaml" }] };
  }
  if (doc.errors.length > 0) {
    // Only the first: the parser's later errors usually follow from it.
    const first = doc.errors[0];
    const { line, col } = lineCounter.linePos(first.pos[0]);
    const words = /call stack/i.test(first.message)
      ? "the nesting goes too deep to be a configuration"
      : YAML_ERROR_WORDS[first.code] ?? first.message.split(/\n|; please| at line/)[0].replace(/^./, (c) => c.toLowerCase());
    return { data: undefined, problems: [{ path: `line ${line}, column ${col}`, message: words }] };
  }
  const structure = structureProblems(doc.contents as Node, "", lineOf);
  if (structure.length > 0) return { data: undefined, problems: structure };
  try {
    return { data: doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT }), problems: [] };
  } catch (err) {
    const message = /alias/i.test((err as Error).message)
      ? `expands aliases (*name) more than ${MAX_ALIAS_COUNT} times, which looks like a resource exhaustion attack; write the values out instead`
      : `could not be read as YAML: ${(err as Error).message.split("\n")[0]}`;
    return { data: undefined, problems: [{ path: WHOLE_FILE, message }] };
  }
}

/** The tags of plain data; anything else (!!binary, !!set, application tags) is not configuration. */
const PLAIN_TAGS = new Set(["tag:yaml.org,2002:str", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float", "tag:yaml.org,2002:bool", "tag:yaml.org,2002:null", "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"]);

/**
 * What the YAML parser accepts but a configuration cannot hold: keys given twice in one
 * mapping, keys that are lists or mappings, and tags other than plain data.
 */
function structureProblems(node: Node | null | undefined, at: string, lineOf: (offset: number | undefined) => number | string): Problem[] {
  const found: Problem[] = [];
  if (node && "tag" in node && node.tag && !PLAIN_TAGS.has(node.tag)) {
    found.push({ path: at || "(top level)", message: `uses the YAML tag ${node.tag.replace("tag:yaml.org,2002:", "!!")} (line ${lineOf(node.range?.[0])}); write a plain value instead` });
  }
  if (isMap(node)) {
    const seen = new Map<string, number | string>();
    for (const pair of node.items) {
      const keyNode = pair.key as Node | null;
      const line = lineOf(keyNode?.range?.[0]);
      if (keyNode !== null && !isScalar(keyNode)) {
        found.push({ path: `line ${line}`, message: "a key is a list or a mapping; keys are plain names" });
        continue;
      }
      const key = String(keyNode?.value);
      const path = at ? `${at}.${key}` : key;
      const first = seen.get(key);
      if (first !== undefined) found.push({ path, message: `is given twice (lines ${first} and ${line}); a key may appear once in a mapping, keep one` });
      else seen.set(key, line);
      found.push(...structureProblems(pair.value as Node | null, path, lineOf));
    }
  } else if (isSeq(node)) {
    node.items.forEach((item, i) => found.push(...structureProblems(item as Node, `${at}[${i}]`, lineOf)));
  }
  return found;
}

/**
 * Environment variables as the loader reads them (`process.env` by default). Declared here, not
 * as Node's `Environment`, so the published declarations need no `@types/node`.
 */
export type Environment = Readonly<Record<string, string | undefined>>;

/**
 * Parses and validates a configuration document. Throws one ValidationError listing every
 * problem, each with its path in the file and what would be valid.
 * @param env where secrets such as TF_VAR_admin_password are checked (never stored)
 */
export function parseConfig(text: string, source = "configuration", env: Environment = process.env): RawConfig {
  const parsed = parseYaml(text);
  if (parsed.problems.length > 0) throw new ValidationError(parsed.problems, `${source} is not valid YAML`);
  const data = parsed.data;
  if (typeof data !== "object" || data === null || Array.isArray(data)) {
    throw new ValidationError(
      [{ path: "(top level)", message: `must be a mapping of settings (host:, modules:, project:), got ${typeName(data)}` }],
      `${source} is invalid`,
    );
  }
  const problems = new Problems();
  const validate = compiled();
  if (validate(data)) {
    crossFieldChecks(data as RawConfig, problems, env);
  } else {
    const errors = validate.errors ?? [];
    const seen = new Set<string>();
    for (const error of errors) {
      const { path: at, message } = describe(error, data);
      const key = `${at}: ${message}`;
      if (!seen.has(key)) {
        seen.add(key);
        problems.add(at, message);
      }
    }
    // Every problem at once: the cross-field rules also run, on what the schema accepted.
    // A rule that needs a refused value is skipped rather than reported twice or on guesses.
    const reported = new Set(problems.list.map((p) => p.path));
    const cross = new Problems();
    try {
      crossFieldChecks(withoutRefused(data, errors), cross, env);
    } catch {
      // A section of the wrong shape: the schema's problems say what to fix first.
    }
    problems.addAll(cross.list.filter((p) => !reported.has(p.path) && !/\bundefined\b/.test(p.message)));
  }
  problems.throwIfAny(`${source} is invalid`);
  return data as RawConfig;
}

/** A copy of `data` without the values the schema refused (optional ones then take their defaults). */
function withoutRefused(data: object, errors: readonly ErrorObject[]): RawConfig {
  const copy = structuredClone(data) as any;
  for (const error of errors) {
    const parts = error.instancePath.split("/").slice(1);
    const parent = parts.slice(0, -1).reduce((v: any, p) => v?.[p], copy);
    if (parts.length > 0 && parent && typeof parent === "object") delete parent[parts[parts.length - 1]];
  }
  return copy;
}

/**
 * The text of a configuration file: UTF-8, with or without a byte order mark. Other
 * encodings are refused as such rather than parsed into confusing YAML errors.
 */
// Typed as Uint8Array (a Buffer is one) so that the published declarations need no @types/node.
export function decodeConfig(bytes: Uint8Array, source = "configuration"): string {
  const encodingProblem = (message: string) => new ValidationError([{ path: WHOLE_FILE, message }], `${source} has an encoding problem`);
  if ((bytes[0] === 0xff && bytes[1] === 0xfe) || (bytes[0] === 0xfe && bytes[1] === 0xff)) {
    throw encodingProblem("is UTF-16 (or UTF-32) encoded; save it as UTF-8");
  }
  if (bytes.includes(0)) throw encodingProblem("contains NUL bytes, as UTF-16 text does; save it as UTF-8");
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    const lossy = new TextDecoder("utf-8").decode(bytes);
    const line = lossy.slice(0, lossy.indexOf("\uFFFD")).split("\n").length;
    throw encodingProblem(`is not valid UTF-8 (first bad byte on line ${line}), e.g. Latin-1 or Windows-1252 text; save it as UTF-8`);
  }
}

/** Larger files are refused unread: a configuration is a few kilobytes. */
const MAX_CONFIG_BYTES = 1024 * 1024;

/** Reads and validates a configuration file. */
export function loadConfig(file: string, env: Environment = process.env): RawConfig {
  const source = path.relative(process.cwd(), file) || file;
  let bytes: Buffer;
  try {
    const size = fs.statSync(file).size;
    if (size > MAX_CONFIG_BYTES) {
      throw new ValidationError([{ path: WHOLE_FILE, message: `is ${(size / 1048576).toFixed(1)} MiB; a configuration is a few kilobytes, so this is not the right file` }], `${source} is invalid`);
    }
    bytes = fs.readFileSync(file);
  } catch (err) {
    if (err instanceof ValidationError) throw err;
    throw new ValidationError([{ path: file, message: `cannot read the configuration file: ${(err as Error).message}` }], "configuration");
  }
  return parseConfig(decodeConfig(bytes, source), source, env);
}

/** The Host props a configuration's host section describes. */
export function hostPropsFromConfig(config: RawConfig): HostProps {
  const h = config.host;
  return {
    hostId: h.id,
    ipv4NetworkPart: h.ipv4_network_part,
    ipv6: h.ipv6_prefix ? { prefix: h.ipv6_prefix, subnet: h.ipv6_subnet, publicAddress: h.public_ipv6 } : undefined,
    publicIpv4: h.public_ipv4,
    externalIpv4: h.external_ipv4,
    networkName: h.network_name,
    lxd: h.lxd && {
      provider: h.lxd.provider,
      address: h.lxd.address,
      remoteName: h.lxd.remote_name,
      clientCertificateFile: h.lxd.client_certificate_file,
      clientKeyFile: h.lxd.client_key_file,
      project: h.lxd.project,
      storagePool: h.lxd.storage_pool,
      profiles: h.lxd.profiles,
      target: h.lxd.target,
      imageServer: h.lxd.image_server,
    },
    consul: h.consul && { address: h.consul.address, datacenter: h.consul.datacenter, dnsDomain: h.consul.dns_domain, acl: h.consul.acl },
  };
}

/** Host prop paths (as validateHostProps names them) → the configuration's field names. */
const HOST_FIELDS: Record<string, string> = {
  "host.hostId": "host.id",
  "host.ipv4NetworkPart": "host.ipv4_network_part",
  "host.publicIpv4": "host.public_ipv4",
  "host.externalIpv4": "host.external_ipv4",
  "host.networkName": "host.network_name",
  "host.ipv6.prefix": "host.ipv6_prefix",
  "host.ipv6.subnet": "host.ipv6_subnet",
  "host.ipv6.publicAddress": "host.public_ipv6",
  "host.lxd.address": "host.lxd.address",
  "host.lxd.provider": "host.lxd.provider",
  "host.lxd.project": "host.lxd.project",
  "host.lxd.clientCertificateFile": "host.lxd.client_certificate_file",
  "host.lxd.clientKeyFile": "host.lxd.client_key_file",
  "host.lxd.imageServer": "host.lxd.image_server",
  "host.consul.address": "host.consul.address",
};

const TURN_FIELDS: Record<keyof TurnPorts, string> = {
  listeningPort: "modules.coturn.listening_port",
  tlsListeningPort: "modules.coturn.tls_listening_port",
  minPort: "modules.coturn.min_port",
  maxPort: "modules.coturn.max_port",
};

/** The admin password policy (matches Synapse's password_config policy). */
export function passwordPolicyProblems(password: string): string[] {
  const rules: [boolean, string][] = [
    [password.length >= 12, "at least 12 characters"],
    [/[a-z]/.test(password), "a lower-case letter"],
    [/[A-Z]/.test(password), "an upper-case letter"],
    [/[0-9]/.test(password), "a digit"],
  ];
  return rules.filter(([ok]) => !ok).map(([, rule]) => rule);
}

function crossFieldChecks(config: RawConfig, problems: Problems, env: Environment): void {
  const { host, project } = config;
  const coturn = config.modules?.coturn ?? {};
  if (host.public_ipv6 !== undefined && host.ipv6_prefix === undefined) {
    problems.add("host.public_ipv6", "needs host.ipv6_prefix: a public IPv6 listener needs IPv6 on the container network");
  }
  // The constructs' own rules, reported with the names written in the file.
  const hostProblems = new Problems();
  validateHostProps(hostPropsFromConfig(config), hostProblems);
  problems.addAll(hostProblems.list, (p) => HOST_FIELDS[p] ?? p);

  const ports: TurnPorts = {
    listeningPort: coturn.listening_port ?? TURN_DEFAULT_PORTS.listeningPort,
    tlsListeningPort: coturn.tls_listening_port ?? TURN_DEFAULT_PORTS.tlsListeningPort,
    minPort: coturn.min_port ?? TURN_DEFAULT_PORTS.minPort,
    maxPort: coturn.max_port ?? TURN_DEFAULT_PORTS.maxPort,
  };
  checkTurnPorts(ports, problems, (field) => TURN_FIELDS[field]);
  const listeners: PublicListener[] = [
    { owner: "the ingress proxy's HTTP port", protocol: "tcp", first: INGRESS_PUBLIC_PORTS.http },
    { owner: "the ingress proxy's HTTPS port", protocol: "tcp", first: INGRESS_PUBLIC_PORTS.https },
  ];
  for (const protocol of ["udp", "tcp"] as const) {
    listeners.push({ owner: TURN_FIELDS.listeningPort, protocol, first: ports.listeningPort });
    listeners.push({ owner: TURN_FIELDS.tlsListeningPort, protocol, first: ports.tlsListeningPort });
  }
  // The listening ports clashing with each other or with the UDP relay range are reported above already.
  const clashes = new Problems();
  checkPublicListeners(listeners, clashes);
  problems.addAll(clashes.list.filter((p) => /ingress proxy/.test(p.message)));

  const elementOptions = new Problems();
  validateElementConfigOptions(
    { domain: project.domain, countryCode: project.default_country_code, footerLinks: project.element_footer_links },
    elementOptions,
  );
  const elementFields = (p: string) =>
    p.replace(/^domain$/, "project.domain").replace(/^countryCode/, "project.default_country_code").replace(/^footerLinks/, "project.element_footer_links");
  problems.addAll(elementOptions.list, elementFields);

  const parts: [string, number][] = [
    ["modules.ingress_proxy.host_part", config.modules?.ingress_proxy?.host_part ?? DEFAULT_HOST_PARTS.ingress_proxy],
    ["modules.postgres.host_part", config.modules?.postgres?.host_part ?? DEFAULT_HOST_PARTS.postgres],
    ["modules.coturn.host_part", coturn.host_part ?? DEFAULT_HOST_PARTS.coturn],
    ["modules.wellknown.host_part", config.modules?.wellknown?.host_part ?? DEFAULT_HOST_PARTS.wellknown],
    ["project.host_parts.synapse", project.host_parts?.synapse ?? DEFAULT_HOST_PARTS.synapse],
    ["project.host_parts.element", project.host_parts?.element ?? DEFAULT_HOST_PARTS.element],
    ["project.host_parts.synapse_admin", project.host_parts?.synapse_admin ?? DEFAULT_HOST_PARTS.synapse_admin],
  ];
  const owners = new Map<number, string>();
  for (const [at, part] of parts) {
    const { first, last } = DEFAULT_DHCP_RANGE;
    if (part >= first && part <= last) {
      problems.add(at, `${host.ipv4_network_part}.${part} is inside the DHCP range ${first}-${last}; use 2-${first - 1}`);
    }
    const other = owners.get(part);
    if (other) problems.add(at, `${host.ipv4_network_part}.${part} is already used by ${other}; every component needs its own address`);
    else owners.set(part, at);
  }

  for (const app of ["element", "synapse_admin"] as const) {
    const settings = project[app];
    if (settings && (settings.version === undefined) !== (settings.sha256 === undefined)) {
      problems.add(`project.${app}`, "version and sha256 go together: a release is pinned by both");
    }
  }
  const certificateNames = [project.domain, `matrix.${project.domain}`, `element.${project.domain}`];
  if (certificateNames.includes(project.turn_domain)) {
    problems.add(
      "project.turn_domain",
      `must differ from the project's own host names (${certificateNames.join(", ")}), which have their own certificate; use e.g. turn.${project.domain}`,
    );
  }
  if (`matrix.${project.domain}`.length > 253 || `element.${project.domain}`.length > 253) {
    problems.add("project.domain", "is too long: matrix.<domain> and element.<domain> must fit in 253 characters");
  }

  const adminPassword = env.TF_VAR_admin_password;
  if (adminPassword !== undefined) {
    const missing = passwordPolicyProblems(adminPassword);
    if (missing.length > 0) problems.add("TF_VAR_admin_password (environment)", `is too weak: it needs ${missing.join(", ")}`);
  }
}
