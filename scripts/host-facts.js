#!/usr/bin/env node
/**
 * Prints, as shell assignments, what the synthesized stack expects of its LXD + Consul host:
 * the bridge, its addresses and DHCP range, the storage pool, profiles, Consul's address and
 * datacenter, and the image each container launches from. Read by scripts/host.sh and
 * scripts/lxd-suite.sh, so that they derive everything from the same configuration file and
 * the same code (lib/config, hostFromConfig) as synth. Needs `npm run build` first.
 *
 * Usage: node scripts/host-facts.js [config.yaml]   (default: $MATRIX_CONFIG, else config/example.yaml)
 * Exit 1 with every problem listed when the file is invalid.
 */
"use strict";
const path = require("path");
const fs = require("fs");

const root = path.resolve(__dirname, "..");
const arg = process.argv[2];
if (arg === "-h" || arg === "--help") {
  const text = fs.readFileSync(__filename, "utf8").split("\n");
  console.log(text.slice(2, text.indexOf(" */")).map((l) => l.replace(/^ \* ?/, "")).join("\n"));
  process.exit(0);
}
const dist = path.join(root, "dist");
if (!fs.existsSync(path.join(dist, "lib", "config.js"))) {
  console.error("host-facts: dist/ is missing: run `npm run build` first");
  process.exit(1);
}
const { loadConfig, DEFAULT_HOST_PARTS } = require(path.join(dist, "lib", "config"));
const { ValidationError } = require(path.join(dist, "lib", "problems"));
const { hostFromConfig } = require(path.join(dist, "constructs", "matrix", "matrix-standalone-stack"));

const file = path.resolve(arg ?? process.env.MATRIX_CONFIG ?? path.join(root, "config", "example.yaml"));
let config, host;
try {
  config = loadConfig(file);
  host = hostFromConfig(config);
} catch (err) {
  if (err instanceof ValidationError) {
    console.error(err.message);
    process.exit(1);
  }
  throw err;
}

const q = (v) => `'${String(v ?? "").replace(/'/g, `'\\''`)}'`;
const modules = config.modules ?? {};
const project = config.project;
// host part and image of every container the stack creates (modules only when deployed here)
const containers = [];
if (modules.deploy !== false) {
  containers.push(["ingress-proxy", modules.ingress_proxy, DEFAULT_HOST_PARTS.ingress_proxy]);
  containers.push(["postgres", modules.postgres, DEFAULT_HOST_PARTS.postgres]);
  containers.push(["wellknown", modules.wellknown, DEFAULT_HOST_PARTS.wellknown]);
  containers.push(["coturn", modules.coturn, DEFAULT_HOST_PARTS.coturn]);
}
containers.push(["synapse", { image: project.synapse?.image, host_part: project.host_parts?.synapse }, DEFAULT_HOST_PARTS.synapse]);
containers.push(["element", { image: project.element?.image, host_part: project.host_parts?.element }, DEFAULT_HOST_PARTS.element]);
containers.push(["synapse-admin", { image: project.synapse_admin?.image, host_part: project.host_parts?.synapse_admin }, DEFAULT_HOST_PARTS.synapse_admin]);

const [consulHost, consulPort] = [host.consulIp, host.consul.address.replace(/^.*:(\d+)$/, "$1")];
const lines = {
  CONFIG_FILE: file,
  HOST_ID: host.hostId,
  PROJECT_ID: project.id,
  DOMAIN: project.domain,
  TURN_DOMAIN: project.turn_domain,
  ADMIN_USER: project.admin.username,
  NETWORK: host.networkName,
  IPV4_PART: host.ipv4NetworkPart,
  GATEWAY4: host.gatewayIpv4,
  GATEWAY6: host.gatewayIpv6 ?? "",
  NETWORK6: host.dualStack ? host.networkCidrs[1] : "",
  DHCP_FIRST: host.addresses.dhcpRange?.first ?? 100,
  DHCP_LAST: host.addresses.dhcpRange?.last ?? 254,
  PUBLIC_IPV4: host.publicIpv4,
  LXD_ADDRESS: host.lxd.address,
  LXD_PROJECT: host.lxd.project,
  STORAGE_POOL: host.lxd.storagePool,
  PROFILES: host.lxd.profiles.join(" "),
  CONSUL_ADDRESS: host.consul.address,
  CONSUL_IP: consulHost,
  CONSUL_HTTP_PORT: consulPort,
  CONSUL_SCHEME: host.consul.scheme,
  CONSUL_DATACENTER: host.consul.datacenter,
  CONSUL_DNS_PORT: host.consul.dnsPort,
  CONSUL_DNS_DOMAIN: host.consul.dnsDomain,
  CONSUL_ACL: host.consul.acl ? 1 : 0,
  CONTAINERS: containers.map(([name]) => name).join(" "),
};
for (const [k, v] of Object.entries(lines)) console.log(`${k}=${q(v)}`);
for (const [name, mod, defPart] of containers) {
  const key = name.toUpperCase().replace(/-/g, "_");
  console.log(`IMAGE_${key}=${q(mod?.image ?? "")}`);
  console.log(`HOSTPART_${key}=${q(mod?.host_part ?? defPart)}`);
}
