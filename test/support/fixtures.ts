/** Shared test fixtures: a dual-stack and an IPv4-only host, and a stack on each. */
import * as fs from "fs";
import * as path from "path";
import { Testing, TerraformStack } from "cdktf";
import { parseConfig, RawConfig } from "../../lib/config";
import type { LxdProviderMajor } from "../../lib/host";
import { Host, HostProps } from "../../lib/host";
import { HostProviders } from "../../constructs/core/host-providers";

export const DUAL_STACK_HOST: HostProps = {
  hostId: "testhost",
  ipv4NetworkPart: "10.10.1",
  ipv6: { prefix: "fd10:10:10:1", subnet: "1", publicAddress: "2001:db8::10" },
  publicIpv4: "203.0.113.10",
};

export const IPV4_HOST: HostProps = {
  hostId: "v4host",
  ipv4NetworkPart: "10.20.1",
  publicIpv4: "198.51.100.20",
};

/** A fresh stack with the host's providers configured. */
export function hostStack(props: HostProps = DUAL_STACK_HOST): { stack: TerraformStack; host: Host } {
  const app = Testing.app();
  const stack = new TerraformStack(app, "test");
  const host = new Host(props);
  new HostProviders(stack, "providers", { host });
  return { stack, host };
}

/** Synthesizes and parses the stack's Terraform JSON. */
export function synthJson(stack: TerraformStack): any {
  return JSON.parse(Testing.synth(stack));
}

/**
 * Every Consul KV entry a synthesized stack writes, as path → value. Fails when a key is owned
 * by two resources or would outlive a destroy: both break the KV contract.
 */
export function kvEntries(json: any): Record<string, string> {
  const entries: Record<string, string> = {};
  for (const resource of Object.values<any>(json.resource?.consul_keys ?? {})) {
    for (const key of resource.key) {
      if (key.path in entries) throw new Error(`consul key ${key.path} is owned by two resources`);
      if (key.delete !== true) throw new Error(`consul key ${key.path} is not deleted on destroy`);
      entries[key.path] = key.value;
    }
  }
  return entries;
}

/** The first (usually only) LXD instance of a synthesized stack. */
export const firstInstance = (json: any): any => Object.values(json.resource.lxd_instance)[0];

export const EXAMPLE_CONFIG = path.join(__dirname, "..", "..", "config", "example.yaml");

/** The example configuration, written for LXD provider `major` (the file itself leaves the default, 3). */
export function exampleConfig(major: LxdProviderMajor = 3): RawConfig {
  const text = fs.readFileSync(EXAMPLE_CONFIG, "utf8");
  const edited = major === 3 ? text : text.replace(/^  lxd:\n/m, `  lxd:\n    provider: ${major}\n`);
  if (major !== 3 && edited === text) throw new Error("config/example.yaml has no host.lxd section to set the provider in");
  return parseConfig(edited, `config/example.yaml with host.lxd.provider ${major}`, {});
}
