#!/usr/bin/env node
// Checks synthesized Terraform JSON (cdk.tf.json) against the committed provider schemas
// (schemas/<provider>-<version>.json, the output of `terraform providers schema -json`), without
// Terraform or the providers: every provider block, resource and data source must use a known
// type, known attributes and blocks, every required attribute and block, no computed-only
// attribute, block nesting and item counts as the schema says, and values of the right type
// (interpolations `${…}` pass any type). The schema is the one of the provider version the file
// pins in required_providers, so each LXD dialect is checked against its own provider.
//
// Usage: node scripts/check-provider-schemas.js [--help] <cdk.tf.json>...
// Exit status: 0 when every file conforms, 1 with one line per problem otherwise, 2 on bad usage.
"use strict";
const fs = require("fs");
const path = require("path");

const ROOT = path.resolve(__dirname, "..");
const SCHEMA_DIR = path.join(ROOT, "schemas");

// "//" is a JSON-syntax comment (cdktf writes its metadata there).
const RESOURCE_META = new Set(["//", "count", "for_each", "depends_on", "lifecycle", "provider", "provisioner", "connection"]);
const DATA_META = new Set(["//", "count", "for_each", "depends_on", "lifecycle", "provider"]);
const PROVIDER_META = new Set(["//", "alias", "version"]);

/** Terraform's built-in provider ("terraform.io/builtin/terraform"): what the stacks use of it. */
const BUILTIN = {
  resource: {
    terraform_data: {
      block: {
        attributes: {
          id: { type: "string", computed: true },
          input: { type: "dynamic", optional: true },
          output: { type: "dynamic", computed: true },
          triggers_replace: { type: "dynamic", optional: true },
        },
      },
    },
  },
  // cdktf reads another stack's outputs with it (cross-stack references).
  data: {
    terraform_remote_state: {
      block: {
        attributes: {
          backend: { type: "string", required: true },
          config: { type: "dynamic", optional: true },
          defaults: { type: "dynamic", optional: true },
          outputs: { type: "dynamic", computed: true },
          workspace: { type: "string", optional: true },
        },
      },
    },
  },
};

let cachedSchemas;
/** source ("terraform-lxd/lxd") → version → provider schema, from every file in schemas/. */
function loadSchemas(dir = SCHEMA_DIR) {
  if (cachedSchemas && cachedSchemas.dir === dir) return cachedSchemas.bySource;
  const bySource = {};
  for (const file of fs.readdirSync(dir).filter((f) => f.endsWith(".json"))) {
    const match = /^(.+)-(\d+\.\d+\.\d+)\.json$/.exec(file);
    if (!match) throw new Error(`schemas/${file}: expected <provider>-<version>.json`);
    const dump = JSON.parse(fs.readFileSync(path.join(dir, file), "utf8"));
    for (const [address, schema] of Object.entries(dump.provider_schemas || {})) {
      const source = address.replace(/^registry\.terraform\.io\//, "");
      (bySource[source] = bySource[source] || {})[match[2]] = schema;
    }
  }
  cachedSchemas = { dir, bySource };
  return bySource;
}

const isExpression = (v) => typeof v === "string" && /^\$\{[\s\S]*\}$/.test(v);
const hasInterpolation = (v) => typeof v === "string" && v.includes("${");

/** Problems of `value` against a cty type (`"string"`, `["list", T]`, …). */
function checkType(value, type, at, out) {
  if (isExpression(value) || type === "dynamic") return;
  if (typeof type === "string") {
    const ok =
      type === "string"
        ? ["string", "number", "boolean"].includes(typeof value)
        : type === "number"
          ? typeof value === "number" || (typeof value === "string" && (hasInterpolation(value) || /^-?\d+(\.\d+)?$/.test(value)))
          : type === "bool"
            ? typeof value === "boolean" || value === "true" || value === "false"
            : true;
    if (!ok) out.push(`${at}: must be a ${type}, got ${JSON.stringify(value)}`);
    return;
  }
  const [kind, inner] = type;
  if (kind === "list" || kind === "set") {
    if (!Array.isArray(value)) return void out.push(`${at}: must be a ${kind}, got ${JSON.stringify(value)}`);
    value.forEach((v, i) => checkType(v, inner, `${at}[${i}]`, out));
  } else if (kind === "map") {
    if (!value || typeof value !== "object" || Array.isArray(value)) return void out.push(`${at}: must be a map, got ${JSON.stringify(value)}`);
    for (const [k, v] of Object.entries(value)) checkType(v, inner, `${at}.${k}`, out);
  } else if (kind === "object") {
    if (!value || typeof value !== "object" || Array.isArray(value)) return void out.push(`${at}: must be an object, got ${JSON.stringify(value)}`);
    for (const k of Object.keys(value)) {
      if (!(k in inner)) out.push(`${at}.${k}: unknown attribute of the object`);
      else checkType(value[k], inner[k], `${at}.${k}`, out);
    }
  }
}

/** Problems of an attribute value, including protocol-6 nested attributes. */
function checkAttribute(value, attribute, at, out) {
  if (attribute.computed && !attribute.optional && !attribute.required) {
    out.push(`${at}: is computed by the provider and cannot be set`);
    return;
  }
  if (attribute.type !== undefined) return checkType(value, attribute.type, at, out);
  const nested = attribute.nested_type;
  if (!nested || isExpression(value)) return;
  const asBlock = { attributes: nested.attributes };
  if (nested.nesting_mode === "single") return checkBlock(value, asBlock, at, out, new Set());
  if (nested.nesting_mode === "map") {
    if (!value || typeof value !== "object" || Array.isArray(value)) return void out.push(`${at}: must be a map of objects`);
    for (const [k, v] of Object.entries(value)) checkBlock(v, asBlock, `${at}.${k}`, out, new Set());
    return;
  }
  if (!Array.isArray(value)) return void out.push(`${at}: must be a ${nested.nesting_mode} of objects`);
  value.forEach((v, i) => checkBlock(v, asBlock, `${at}[${i}]`, out, new Set()));
}

/** Problems of one block body against its schema block. */
function checkBlock(value, block, at, out, meta) {
  if (!value || typeof value !== "object" || Array.isArray(value)) {
    out.push(`${at}: must be an object, got ${JSON.stringify(value)}`);
    return;
  }
  const attributes = block.attributes || {};
  const blockTypes = block.block_types || {};
  for (const [key, v] of Object.entries(value)) {
    if (meta.has(key)) continue;
    if (key in attributes) checkAttribute(v, attributes[key], `${at}.${key}`, out);
    else if (key in blockTypes) checkNestedBlocks(v, blockTypes[key], `${at}.${key}`, out);
    else out.push(`${at}.${key}: unknown attribute or block`);
  }
  for (const [key, attribute] of Object.entries(attributes)) {
    if (attribute.required && !(key in value)) out.push(`${at}.${key}: required attribute is missing`);
  }
  for (const [key, blockType] of Object.entries(blockTypes)) {
    if ((blockType.min_items || 0) > 0 && !(key in value)) out.push(`${at}.${key}: at least ${blockType.min_items} block(s) required, none given`);
  }
}

function checkNestedBlocks(value, blockType, at, out) {
  const mode = blockType.nesting_mode;
  if (mode === "single" || mode === "group") {
    const items = Array.isArray(value) ? value : [value];
    if (items.length > 1) out.push(`${at}: a single block, got ${items.length}`);
    items.forEach((item) => checkBlock(item, blockType.block, at, out, new Set()));
    return;
  }
  if (mode === "map") {
    if (!value || typeof value !== "object" || Array.isArray(value)) return void out.push(`${at}: must be a map of blocks`);
    for (const [k, v] of Object.entries(value)) checkBlock(v, blockType.block, `${at}.${k}`, out, new Set());
    return;
  }
  if (!Array.isArray(value)) return void out.push(`${at}: must be a ${mode} of blocks (a JSON array), got ${JSON.stringify(value)}`);
  if (blockType.min_items && value.length < blockType.min_items) out.push(`${at}: at least ${blockType.min_items} block(s), got ${value.length}`);
  if (blockType.max_items && value.length > blockType.max_items) out.push(`${at}: at most ${blockType.max_items} block(s), got ${value.length}`);
  value.forEach((v, i) => checkBlock(v, blockType.block, `${at}[${i}]`, out, new Set()));
}

/**
 * A provider used without a required_providers entry: Terraform takes hashicorp/<name>, in any
 * version; checked against the one committed version when there is exactly one.
 */
function implicitProvider(schemas, name) {
  const versions = schemas[`hashicorp/${name}`];
  const known = versions ? Object.keys(versions) : [];
  return known.length === 1 ? { schema: versions[known[0]], label: `hashicorp/${name} ${known[0]} (implicit)` } : undefined;
}

/**
 * Problems of one synthesized stack (parsed cdk.tf.json), each as "<path>: <what is wrong>".
 * `label` prefixes each problem (e.g. the stack's name).
 */
function checkStack(stack, { label = "stack", schemaDir } = {}) {
  const schemas = loadSchemas(schemaDir);
  const out = [];
  const required = (stack.terraform && stack.terraform.required_providers) || {};
  const providerSchemas = {};
  for (const [name, pin] of Object.entries(required)) {
    const source = String(pin.source || "").replace(/^registry\.terraform\.io\//, "");
    const versions = schemas[source];
    if (!versions) out.push(`terraform.required_providers.${name}: no committed schema for ${source}`);
    else if (!versions[pin.version]) out.push(`terraform.required_providers.${name}: no committed schema for ${source} ${pin.version} (have ${Object.keys(versions).join(", ")}); pin an exact version`);
    else providerSchemas[name] = { schema: versions[pin.version], label: `${source} ${pin.version}` };
  }
  for (const [name, configs] of Object.entries(stack.provider || {})) {
    const p = providerSchemas[name];
    if (!p) {
      out.push(`provider.${name}: not in terraform.required_providers`);
      continue;
    }
    (Array.isArray(configs) ? configs : [configs]).forEach((config, i) => checkBlock(config, p.schema.provider.block, `provider.${name}[${i}] (${p.label})`, out, PROVIDER_META));
  }
  const sections = [
    ["resource", "resource_schemas", RESOURCE_META],
    ["data", "data_source_schemas", DATA_META],
  ];
  for (const [section, key, meta] of sections) {
    for (const [type, instances] of Object.entries(stack[section] || {})) {
      for (const [name, body] of Object.entries(instances)) {
        const at = `${section}.${type}.${name}`;
        const providerName = body.provider ? String(body.provider).split(".")[0] : type.split("_")[0];
        let typeSchema;
        let schemaLabel;
        if (providerName === "terraform") {
          typeSchema = BUILTIN[section][type];
          schemaLabel = "terraform built-in";
        } else {
          const p = providerSchemas[providerName] || implicitProvider(schemas, providerName);
          if (!p) {
            out.push(`${at}: provider ${providerName} is not in terraform.required_providers, and Terraform's implicit hashicorp/${providerName} has no committed schema`);
            continue;
          }
          typeSchema = (p.schema[key] || {})[type];
          schemaLabel = p.label;
        }
        if (!typeSchema) {
          out.push(`${at}: unknown ${section === "data" ? "data source" : "resource"} type for ${schemaLabel}`);
          continue;
        }
        checkBlock(body, typeSchema.block, `${at} (${schemaLabel})`, out, meta);
      }
    }
  }
  return out.map((p) => `${label}: ${p}`);
}

module.exports = { checkStack, loadSchemas };

if (require.main === module) {
  const args = process.argv.slice(2);
  if (args.includes("--help") || args.includes("-h") || args.length === 0) {
    const help = fs.readFileSync(__filename, "utf8").split("\n").slice(1, 12).map((l) => l.replace(/^\/\/ ?/, "")).join("\n");
    console.log(help);
    process.exit(args.length === 0 ? 2 : 0);
  }
  const started = Date.now();
  const problems = [];
  for (const file of args) {
    let stack;
    try {
      stack = JSON.parse(fs.readFileSync(file, "utf8"));
    } catch (err) {
      problems.push(`${file}: cannot read: ${err.message}`);
      continue;
    }
    const found = checkStack(stack, { label: file });
    problems.push(...found);
    console.log(`[schemas] ${file}: ${found.length === 0 ? "conforms" : `${found.length} problem(s)`}`);
  }
  for (const p of problems) console.error(`[schemas] ${p}`);
  console.log(`[schemas] ${args.length} file(s), ${problems.length} problem(s) (${Date.now() - started} ms)`);
  process.exit(problems.length === 0 ? 0 : 1);
}
