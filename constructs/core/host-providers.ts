/**
 * Configures the LXD, Consul and random providers of a stack for one host: the LXD remote
 * (plus the `images` simplestreams remote for stock images) and the Consul server's API.
 */
import { Construct } from "constructs";
import { TerraformStack } from "cdktf";
import versions from "../../versions.json";
import { LxdProvider } from "../../gen/providers/lxd/provider";
import { ConsulProvider } from "../../gen/providers/consul/provider";
import { RandomProvider } from "@cdktf/provider-random/lib/provider";
import type { Host } from "../../lib/host";

export interface HostProvidersProps {
  readonly host: Host;
}

export class HostProviders extends Construct {
  readonly lxd: LxdProvider;
  readonly consul: ConsulProvider;
  readonly random: RandomProvider;

  constructor(scope: Construct, id: string, props: HostProvidersProps) {
    super(scope, id);
    const { host } = props;
    this.lxd = new LxdProvider(this, "lxd", {
      defaultRemote: host.lxd.remoteName,
      remote: [
        {
          name: host.lxd.remoteName,
          address: host.lxd.address,
          clientCertificateFile: host.lxd.clientCertificateFile,
          clientKeyFile: host.lxd.clientKeyFile,
          serverCertificateFingerprint: host.lxd.serverCertificateFingerprint,
        },
        { name: "images", address: host.lxd.imageServer, protocol: "simplestreams" },
      ],
    });
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
