/**
 * Turns the synthesized Terraform JSON of a stack into what the real-LXD suite creates with
 * `lxc` and Consul's HTTP API (Terraform providers cannot be installed in CI): storage
 * volumes, instances with their rendered user-data and devices, Consul KV entries and catalog
 * registrations. Terraform expressions in the strings are evaluated here, with test values for
 * the generated secrets and the admin password; an expression this evaluator does not know
 * is an error, so a new kind of reference in the constructs cannot slip through unevaluated.
 */
import * as crypto from "crypto";

type Json = any; // eslint-disable-line @typescript-eslint/no-explicit-any

export interface PlannedVolume {
  readonly name: string;
  readonly pool: string;
}

export interface PlannedDevice {
  readonly name: string;
  readonly type: string;
  readonly properties: Record<string, string>;
}

export interface PlannedInstance {
  /** Terraform resource id (e.g. `modules_postgres_container_instance_…`). */
  readonly id: string;
  readonly name: string;
  readonly image: string;
  readonly profiles: string[];
  /** `config` plus `limits.*`, evaluated. */
  readonly config: Record<string, string>;
  readonly devices: PlannedDevice[];
}

/** A file Terraform pushes into a running container (`lxd_instance_file`): the secrets. */
export interface PlannedFile {
  readonly container: string;
  readonly path: string;
  readonly content: string;
  readonly mode: string;
  readonly uid: number;
  readonly gid: number;
}

export interface PlannedService {
  readonly node: string;
  readonly address: string;
  readonly name: string;
  readonly port: number;
  readonly tags: string[];
}

export interface DeployPlan {
  readonly volumes: PlannedVolume[];
  readonly instances: PlannedInstance[];
  /** Files pushed into the containers once they run. */
  readonly files: PlannedFile[];
  /** Consul KV path → value. */
  readonly kv: Record<string, string>;
  readonly services: PlannedService[];
  /** The values that stood in for generated secrets, by Terraform resource id. */
  readonly secrets: Record<string, string>;
  readonly adminPassword: string;
  /** Consul ACL policies (host.consul.acl), created through the API as Terraform does. */
  readonly aclPolicies?: PlannedAclPolicy[];
  /** Consul ACL tokens, with test IDs standing in for the ones Consul generates. */
  readonly aclTokens?: PlannedAclToken[];
}

export interface PlannedAclPolicy {
  readonly name: string;
  readonly description: string;
  readonly rules: string;
}

export interface PlannedAclToken {
  readonly accessorId: string;
  readonly secretId: string;
  readonly description: string;
  readonly policies: string[];
}

/** A deterministic UUID for a test token's accessor or secret ID. */
export function testUuid(id: string, kind: "accessor" | "secret"): string {
  const h = crypto.createHash("sha256").update(`matrix-lxd test token ${kind} ${id}`).digest("hex");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-8${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

/** A deterministic test value for a random_password of the given length (letters and digits). */
export function testSecret(id: string, length: number): string {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  const bytes = crypto.createHash("sha512").update(`matrix-lxd test secret ${id}`).digest();
  let out = "";
  for (let i = 0; i < length; i++) out += alphabet[bytes[i % bytes.length] % alphabet.length];
  return out;
}

/** The admin password the suite deploys with; it satisfies the stack's password policy. */
export const TEST_ADMIN_PASSWORD = "Lxd-suite-Admin-9x";

type Value = string | number | boolean;

class Evaluator {
  constructor(private readonly lookup: (traversal: string) => Value) {}

  /** Evaluates a Terraform template string (the contents of a JSON string). */
  template(text: string): string {
    let out = "";
    let i = 0;
    while (i < text.length) {
      if (text.startsWith("$${", i)) {
        out += "${";
        i += 3;
      } else if (text.startsWith("%%{", i)) {
        out += "%{";
        i += 3;
      } else if (text.startsWith("${", i)) {
        const end = this.matchingBrace(text, i + 2);
        out += String(this.expression(text.slice(i + 2, end).trim()));
        i = end + 1;
      } else if (text.startsWith("%{", i)) {
        throw new Error(`template directive at ${JSON.stringify(text.slice(i, i + 40))} is not supported by the suite`);
      } else {
        out += text[i++];
      }
    }
    return out;
  }

  private matchingBrace(text: string, from: number): number {
    let depth = 0;
    let inString = false;
    for (let i = from; i < text.length; i++) {
      const c = text[i];
      if (inString) {
        if (c === "\\") i++;
        else if (c === '"') inString = false;
        else if (c === "$" && text[i + 1] === "{") {
          i = this.matchingBrace(text, i + 2);
        }
      } else if (c === '"') inString = true;
      else if (c === "{") depth++;
      else if (c === "}") {
        if (depth === 0) return i;
        depth--;
      }
    }
    throw new Error(`unterminated expression in ${JSON.stringify(text.slice(from - 2, from + 60))}`);
  }

  private expression(expr: string): Value {
    const call = /^([a-z0-9_]+)\(([\s\S]*)\)$/.exec(expr);
    if (call) {
      const arg = this.expression(call[2].trim());
      switch (call[1]) {
        case "jsonencode":
          return JSON.stringify(arg);
        case "base64encode":
          return Buffer.from(String(arg), "utf8").toString("base64");
        case "md5":
          return crypto.createHash("md5").update(String(arg)).digest("hex");
        case "sha256":
          return crypto.createHash("sha256").update(String(arg)).digest("hex");
        default:
          throw new Error(`function ${call[1]}() is not supported by the suite: ${expr}`);
      }
    }
    if (expr.startsWith('"') && expr.endsWith('"')) {
      // A quoted template: unescape HCL string escapes around the interpolations.
      const inner = expr.slice(1, -1).replace(/\\(["\\nrt])/g, (_, c) => ({ n: "\n", r: "\r", t: "\t" })[c as "n"] ?? c);
      return this.template(inner);
    }
    if (/^[0-9]+$/.test(expr)) return Number(expr);
    if (/^[A-Za-z_][A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+)+$/.test(expr)) return this.lookup(expr);
    throw new Error(`expression ${JSON.stringify(expr)} is not supported by the suite`);
  }
}

/** Builds the deploy plan of a synthesized stack (the parsed cdk.tf.json). */
export function planFromSynth(tf: Json, adminPassword = TEST_ADMIN_PASSWORD): DeployPlan {
  const resources: Record<string, Record<string, Json>> = tf.resource ?? {};
  const known = new Set(["consul_acl_policy", "consul_acl_token", "consul_keys", "consul_node", "consul_service", "lxd_instance", "lxd_instance_file", "lxd_storage_volume", "random_password", "terraform_data"]);
  const unknown = Object.keys(resources).filter((t) => !known.has(t));
  if (unknown.length) throw new Error(`resource types the suite cannot create: ${unknown.join(", ")}`);

  const secrets: Record<string, string> = {};
  for (const [id, r] of Object.entries(resources.random_password ?? {})) {
    if (r.special !== false) throw new Error(`random_password.${id}: the suite's test values have no special characters; the stack asks for them`);
    secrets[id] = testSecret(id, r.length);
  }
  const tokenSecretSources: Record<string, Json> = tf.data?.consul_acl_token_secret_id ?? {};
  const unknownData = Object.keys(tf.data ?? {}).filter((t) => t !== "consul_acl_token_secret_id");
  if (unknownData.length) throw new Error(`data source types the suite cannot read: ${unknownData.join(", ")}`);
  const lookup = (traversal: string): Value => {
    const parts = traversal.split(".");
    if (parts[0] === "data" && parts[1] === "consul_acl_token_secret_id" && parts[3] === "secret_id" && parts.length === 4 && tokenSecretSources[parts[2]]) {
      const token = /^\$\{consul_acl_token\.([\w-]+)\.accessor_id\}$/.exec(tokenSecretSources[parts[2]].accessor_id)?.[1];
      if (!token || !resources.consul_acl_token?.[token]) throw new Error(`${traversal}: its accessor_id is not a token of the stack`);
      return testUuid(token, "secret");
    }
    const [type, id, attr, ...rest] = parts;
    if (rest.length) throw new Error(`reference ${traversal} is not supported by the suite`);
    if (type === "var" && id === "admin_password" && attr === undefined) return adminPassword;
    if (type === "random_password" && attr === "result" && id in secrets) return secrets[id];
    if ((type === "lxd_storage_volume" || type === "consul_node" || type === "lxd_instance" || type === "consul_acl_policy") && attr === "name" && resources[type]?.[id]) {
      return evaluator.template(resources[type][id].name);
    }
    throw new Error(`reference ${traversal} is not supported by the suite`);
  };
  const evaluator = new Evaluator(lookup);
  const t = (s: string): string => evaluator.template(s);

  const volumes = Object.values(resources.lxd_storage_volume ?? {}).map((v) => ({ name: t(v.name), pool: t(v.pool) }));
  const instances = Object.entries(resources.lxd_instance ?? {}).map(([id, r]) => {
    const config: Record<string, string> = {};
    for (const [k, v] of Object.entries<string>(r.config ?? {})) config[k] = t(v);
    for (const [k, v] of Object.entries<string>(r.limits ?? {})) config[`limits.${k}`] = t(v);
    return {
      id,
      name: t(r.name),
      image: t(r.image),
      profiles: (r.profiles ?? ["default"]).map(t),
      config,
      devices: (r.device ?? []).map((d: Json) => ({
        name: d.name,
        type: d.type,
        properties: Object.fromEntries(Object.entries<string>(d.properties ?? {}).map(([k, v]) => [k, t(v)])),
      })),
    };
  });
  const files = Object.values(resources.lxd_instance_file ?? {}).map((f) => ({
    container: t(f.instance),
    path: t(f.target_path),
    content: t(f.content),
    mode: f.mode ?? "0644",
    uid: Number(f.uid ?? 0),
    gid: Number(f.gid ?? 0),
  }));
  const kv: Record<string, string> = {};
  for (const r of Object.values(resources.consul_keys ?? {})) {
    for (const key of r.key ?? []) kv[t(key.path)] = t(key.value);
  }
  const services = Object.values(resources.consul_service ?? {}).map((s) => ({
    node: t(s.node),
    address: t(s.address),
    name: t(s.name),
    port: Number(s.port),
    tags: (s.tags ?? []).map(t),
  }));
  const aclPolicies = Object.values(resources.consul_acl_policy ?? {}).map((p) => ({ name: t(p.name), description: t(p.description ?? ""), rules: t(p.rules) }));
  const aclTokens = Object.entries(resources.consul_acl_token ?? {}).map(([id, r]) => ({
    accessorId: testUuid(id, "accessor"),
    secretId: testUuid(id, "secret"),
    description: t(r.description ?? ""),
    policies: (r.policies ?? []).map(t),
  }));
  return { volumes, instances, files, kv, services, secrets, adminPassword, aclPolicies, aclTokens };
}
