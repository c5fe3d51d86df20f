/**
 * The self-hoster's configuration file: YAML validated against schema/matrix-config.schema.json
 * (ajv, every error at once) plus the cross-field rules a schema cannot express (relay range,
 * address collisions, secrets from the environment). The result maps onto the props of
 * MatrixStandaloneStack.
 */
import { createHash } from "crypto";
import * as fs from "fs";
import * as path from "path";
import type { ErrorObject, ValidateFunction } from "ajv";
import { parseDocument } from "yaml";
import { Problems, ValidationError } from "./problems";
import { lxdProviderProblems } from "./host";
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
    consul?: { address?: string; datacenter?: string; dns_domain?: string };
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

/** The default DHCP range of the host network; static addresses must stay below it. */
const DHCP_FIRST = 100;

/** How ajv compiles the schema, here and ahead of time (scripts/compile-config-schema.js). */
export const CONFIG_AJV = {
  options: { allErrors: true, strict: true, useDefaults: false },
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
  const ajv = new Ajv({ ...CONFIG_AJV.options });
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
  const target = (node.$ref as string).replace(/^#\//, "").split("/").reduce((n: any, p: string) => n?.[p], schema);
  // The referenced definition says what is valid; the property says what it is for.
  return { ...target, ...node, $ref: undefined, description: target?.description ?? node.description };
}

function describe(error: ErrorObject, data: unknown): { path: string; message: string } {
  const at = pathOf(error);
  const got = (value: unknown) => (value === undefined ? "" : `, got ${JSON.stringify(value)}`);
  const value = error.instancePath.split("/").slice(1).reduce((v: any, p) => v?.[p], data);
  switch (error.keyword) {
    case "required": {
      const field = (error.params as { missingProperty: string }).missingProperty;
      return { path: at === "(top level)" ? field : `${at}.${field}`, message: "is required" };
    }
    case "additionalProperties": {
      const key = (error.params as { additionalProperty: string }).additionalProperty;
      const allowed = Object.keys(schemaAt(error.instancePath)?.properties ?? {});
      return {
        path: at === "(top level)" ? key : `${at}.${key}`,
        message: `is not a known setting; valid keys here: ${allowed.join(", ")}`,
      };
    }
    case "pattern":
    case "format": {
      const node = schemaAt(error.instancePath);
      const rule = node?.description ? node.description.split(". ")[0].replace(/\.$/, "") : error.message;
      return { path: at, message: `is not valid${got(value)}: ${rule}` };
    }
    case "type":
      return { path: at, message: `must be ${(error.params as { type: string }).type}${got(value)}` };
    case "minimum":
    case "maximum":
    case "exclusiveMinimum": {
      const node = schemaAt(error.instancePath);
      const low = node?.minimum ?? (node?.exclusiveMinimum !== undefined ? `above ${node.exclusiveMinimum}` : undefined);
      const range = node?.maximum !== undefined ? `from ${low} to ${node.maximum}` : `${low} or more`;
      return { path: at, message: `must be a number ${range}${got(value)}` };
    }
    case "maxLength":
      return { path: at, message: `must be at most ${(error.params as { limit: number }).limit} characters${got(value)}` };
    default:
      return { path: at, message: `${error.message ?? "is invalid"}${got(value)}` };
  }
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
  const doc = parseDocument(text, { uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new ValidationError(
      doc.errors.map((e) => ({ path: `line ${e.linePos?.[0].line ?? "?"}`, message: e.message.split("\n")[0] })),
      `${source} is not valid YAML`,
    );
  }
  const data = doc.toJS() ?? {};
  const problems = new Problems();
  const validate = compiled();
  if (!validate(data)) {
    const seen = new Set<string>();
    for (const error of validate.errors ?? []) {
      const { path: at, message } = describe(error, data);
      const key = `${at}: ${message}`;
      if (!seen.has(key)) {
        seen.add(key);
        problems.add(at, message);
      }
    }
  } else {
    crossFieldChecks(data as RawConfig, problems, env);
  }
  problems.throwIfAny(`${source} is invalid`);
  return data as RawConfig;
}

/** Reads and validates a configuration file. */
export function loadConfig(file: string, env: Environment = process.env): RawConfig {
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (err) {
    throw new ValidationError([{ path: file, message: `cannot read the configuration file: ${(err as Error).message}` }], "configuration");
  }
  return parseConfig(text, path.relative(process.cwd(), file) || file, env);
}

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
  if (host.lxd) {
    const yamlNames = {
      provider: "provider",
      project: "project",
      clientCertificateFile: "client_certificate_file",
      clientKeyFile: "client_key_file",
      serverCertificateFingerprint: "server_certificate_fingerprint",
      imageServer: "image_server",
    };
    const lxd = host.lxd;
    lxdProviderProblems(
      { provider: lxd.provider, project: lxd.project, clientCertificateFile: lxd.client_certificate_file, clientKeyFile: lxd.client_key_file, imageServer: lxd.image_server },
      problems,
      (key) => `host.lxd.${yamlNames[key]}`,
    );
  }
  if (host.public_ipv6 !== undefined && host.ipv6_prefix === undefined) {
    problems.add("host.public_ipv6", "needs host.ipv6_prefix: a public IPv6 listener needs IPv6 on the container network");
  }
  const min = coturn.min_port ?? 50000;
  const max = coturn.max_port ?? 51000;
  problems.check(min < max, "modules.coturn.min_port", `must be less than modules.coturn.max_port (got ${min} >= ${max})`);
  for (const key of ["listening_port", "tls_listening_port"] as const) {
    const port = coturn[key] ?? (key === "listening_port" ? 3478 : 5349);
    problems.check(port < min || port > max, `modules.coturn.${key}`, `must lie outside the relay range ${min}-${max}, got ${port}`);
  }
  problems.check(
    (coturn.listening_port ?? 3478) !== (coturn.tls_listening_port ?? 5349),
    "modules.coturn.tls_listening_port",
    "must differ from modules.coturn.listening_port",
  );

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
    if (part >= DHCP_FIRST) {
      problems.add(at, `${host.ipv4_network_part}.${part} is inside the DHCP range ${DHCP_FIRST}-254; use 2-${DHCP_FIRST - 1}`);
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
  if (project.turn_domain === project.domain) {
    problems.add("project.turn_domain", `must differ from project.domain (e.g. turn.${project.domain})`);
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
