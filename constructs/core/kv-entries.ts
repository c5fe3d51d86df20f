/**
 * A set of Consul KV entries owned by Terraform: written on apply, deleted on destroy.
 * Each registration construct owns its own keys, so destroying one never removes another's.
 * Values arrive in Consul as written: Terraform template syntax in them is escaped.
 */
import { Construct } from "constructs";
import type { ITerraformDependable } from "cdktf";
import { Keys } from "../../gen/providers/consul/keys";
import { terraformLiteral } from "../../lib/terraform-literal";

export class KvEntries extends Construct {
  readonly resource: Keys;

  constructor(scope: Construct, id: string, entries: Record<string, string>, dependsOn?: ITerraformDependable[]) {
    super(scope, id);
    this.resource = new Keys(this, "keys", {
      key: Object.entries(entries).map(([path, value]) => ({ path, value: terraformLiteral(value), delete: true })),
      dependsOn,
    });
  }
}
