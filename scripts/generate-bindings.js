#!/usr/bin/env node
// Regenerates the TypeScript provider bindings in gen/ from the committed provider
// schemas in schemas/*.json, offline. The provider versions written into the bindings
// (and so into every synthesized stack's required_providers) come from versions.json.
"use strict";
const fs = require("fs");
const path = require("path");
// @cdktf/commons warns about a missing Terraform CLI configuration on load; none is needed here.
if (process.env.TF_CLI_CONFIG_FILE && !fs.existsSync(process.env.TF_CLI_CONFIG_FILE)) delete process.env.TF_CLI_CONFIG_FILE;
const { generateProviderBindingsFromSchema } = require("@cdktf/provider-generator");

const root = path.resolve(__dirname, "..");
const versions = require(path.join(root, "versions.json"));
const outDir = path.join(root, "gen");
const generated = ["lxd", "consul"];

async function main() {
  const started = Date.now();
  fs.rmSync(outDir, { recursive: true, force: true });
  for (const name of generated) {
    const pin = versions.providers[name];
    const schema = JSON.parse(fs.readFileSync(path.join(root, "schemas", `${name}.json`), "utf8"));
    const address = `registry.terraform.io/${pin.source}`;
    if (!schema.provider_schemas[address]) {
      throw new Error(`schemas/${name}.json has no provider ${address}`);
    }
    schema.provider_versions = { [address]: pin.version };
    await generateProviderBindingsFromSchema(outDir, schema);
    console.log(`[bindings] ${name} ${pin.version} -> gen/providers/${name}`);
  }
  console.log(`[bindings] done in ${((Date.now() - started) / 1000).toFixed(1)} s`);
}

main().catch((err) => {
  console.error(`[bindings] ${err.stack || err}`);
  process.exit(1);
});
