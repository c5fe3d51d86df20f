#!/usr/bin/env node
// Regenerates the TypeScript provider bindings in gen/ from the committed provider
// schemas schemas/<provider>-<version>.json, offline. The provider versions written into the
// bindings (and so into every synthesized stack's required_providers) come from versions.json.
// Both LXD provider majors get bindings: 3.x in gen/providers/lxd, 1.x in gen/providers/lxd-v1.
// Consul's bindings cover only the resources the project uses or is meant to (KV, catalog, ACLs,
// config entries, prepared queries); its committed schema is the provider's complete dump.
// The random provider's bindings are the prebuilt @cdktf/provider-random package; its schema is
// committed for the provider-schema test only.
//
// Usage: node scripts/generate-bindings.js [--help]
"use strict";
const fs = require("fs");
const os = require("os");
const path = require("path");

if (process.argv.includes("--help") || process.argv.includes("-h")) {
  console.log(fs.readFileSync(__filename, "utf8").split("\n").slice(1, 10).map((l) => l.replace(/^\/\/ ?/, "")).join("\n"));
  process.exit(0);
}
// @cdktf/commons warns about a missing Terraform CLI configuration on load; none is needed here.
if (process.env.TF_CLI_CONFIG_FILE && !fs.existsSync(process.env.TF_CLI_CONFIG_FILE)) delete process.env.TF_CLI_CONFIG_FILE;
const { generateProviderBindingsFromSchema } = require("@cdktf/provider-generator");

const root = path.resolve(__dirname, "..");
const versions = require(path.join(root, "versions.json"));
const outDir = path.join(root, "gen");
/**
 * provider name, major (a key of versions.json providers.<name>.versions), folder under
 * gen/providers, and optionally the only resource and data source types to generate.
 */
const BINDINGS = [
  { name: "lxd", major: "3", folder: "lxd" },
  { name: "lxd", major: "1", folder: "lxd-v1" },
  {
    name: "consul",
    major: "2",
    folder: "consul",
    resources: ["consul_acl_policy", "consul_acl_token", "consul_config_entry", "consul_key_prefix", "consul_keys", "consul_node", "consul_prepared_query", "consul_service"],
    dataSources: ["consul_acl_token_secret_id", "consul_key_prefix", "consul_keys"],
  },
];

/** The schema with only the listed types (all when no list is given); fails on a type it lacks. */
function only(schemas, types, file) {
  if (!types) return schemas;
  const missing = types.filter((t) => !(t in schemas));
  if (missing.length) throw new Error(`${file} has no ${missing.join(", ")}`);
  return Object.fromEntries(types.map((t) => [t, schemas[t]]));
}

async function main() {
  const started = Date.now();
  fs.rmSync(outDir, { recursive: true, force: true });
  for (const { name, major, folder, resources, dataSources } of BINDINGS) {
    const pin = versions.providers[name];
    const version = pin.versions[major];
    const file = `schemas/${name}-${version}.json`;
    const schema = JSON.parse(fs.readFileSync(path.join(root, file), "utf8"));
    const address = `registry.terraform.io/${pin.source}`;
    if (!schema.provider_schemas[address]) throw new Error(`${file} has no provider ${address}`);
    const provider = schema.provider_schemas[address];
    provider.resource_schemas = only(provider.resource_schemas, resources, file);
    provider.data_source_schemas = only(provider.data_source_schemas, dataSources, file);
    schema.provider_versions = { [address]: version };
    // The generator names the folder after the provider; generate aside and move it into place.
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "bindings-"));
    try {
      await generateProviderBindingsFromSchema(tmp, schema);
      fs.mkdirSync(path.join(outDir, "providers"), { recursive: true });
      fs.cpSync(path.join(tmp, "providers", name), path.join(outDir, "providers", folder), { recursive: true });
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
    console.log(`[bindings] ${name} ${version} (${file}) -> gen/providers/${folder}`);
  }
  console.log(`[bindings] done in ${((Date.now() - started) / 1000).toFixed(1)} s`);
}

main().catch((err) => {
  console.error(`[bindings] ${err.stack || err}`);
  process.exit(1);
});
