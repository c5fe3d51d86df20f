/** Shared test fixtures: a dual-stack and an IPv4-only host, and a stack on each. */
import { Testing, TerraformStack } from "cdktf";
import { Host, HostProps } from "../../lib/host";
import { HostProviders } from "../../constructs/host-providers";

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
