/**
 * Configures the LXD, Consul and random providers of a stack for one host: the LXD provider of
 * the host's major (its remote, and with 3.x the `images` simplestreams remote for stock
 * images; see lxd-dialect.ts) and the Consul server's API.
 */
import { Construct } from "constructs";
import { TerraformProvider, TerraformStack } from "cdktf";
import versions from "../../versions.json";
import { ConsulProvider } from "../../gen/providers/consul/provider";
import { RandomProvider } from "@cdktf/provider-random/lib/provider";
import type { Host } from "../../lib/host";
import { lxdDialect } from "./lxd-dialect";

export interface HostProvidersProps {
  readonly host: Host;
}

export class HostProviders extends Construct {
  /** The LXD provider block (`lxd`), of the host's provider major. */
  readonly lxd: TerraformProvider;
  readonly consul: ConsulProvider;
  readonly random: RandomProvider;

  constructor(scope: Construct, id: string, props: HostProvidersProps) {
    super(scope, id);
    const { host } = props;
    this.lxd = lxdDialect(host).provider(this, "lxd", host);
    this.consul = new ConsulProvider(this, "consul", {
      address: host.consul.address,
      scheme: host.consul.scheme,
      datacenter: host.consul.datacenter,
    });
    this.random = new RandomProvider(this, "random", {});
    // terraform_data and the nested-attribute schemas of the LXD provider need a recent CLI;
    // Terraform checks this itself at init and plan.
    TerraformStack.of(this).addOverride("terraform.required_version", `>= ${versions.terraform.minimum}`);
  }
}
