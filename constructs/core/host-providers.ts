/**
 * Configures the LXD, Consul and random providers of a stack for one host: the LXD provider of
 * the host's major (its remote, and with 3.x the `images` simplestreams remote for stock
 * images; see lxd-dialect.ts) and the Consul server's API. The Consul provider's token is never
 * in the stack: Terraform reads it from CONSUL_HTTP_TOKEN at plan and apply.
 */
import { Construct } from "constructs";
import { Annotations, TerraformProvider, TerraformStack } from "cdktf";
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
    if (host.consul.acl && !process.env.CONSUL_HTTP_TOKEN && !process.env.CONSUL_TOKEN) {
      Annotations.of(this).addWarning(
        `host.consul.acl is on and CONSUL_HTTP_TOKEN is unset: deploy and destroy need a Consul token that may write the KV prefixes, the catalog and ACL policies and tokens (on a host made by host:up: export CONSUL_HTTP_TOKEN="$(cat /var/lib/matrix-lxd/${host.hostId}/consul/management-token)"); without one, Consul answers "Permission denied"`,
      );
    }
    // terraform_data and the nested-attribute schemas of the LXD provider need a recent CLI;
    // Terraform checks this itself at init and plan.
    TerraformStack.of(this).addOverride("terraform.required_version", `>= ${versions.terraform.minimum}`);
  }
}
