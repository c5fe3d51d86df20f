/**
 * A built-in `terraform_data` resource holding what a container is built from (image and
 * user-data); the container is replaced when it changes. It synthesizes like cdktf's
 * DataResource without that class's synth-time `terraform version` spawn (about 35 ms per
 * resource); the stack's `required_version` (set by HostProviders) makes Terraform check its
 * own version instead.
 */
import { Construct } from "constructs";
import { TerraformResource, anyToHclTerraform, anyToTerraform, hashMapper, hashMapperHcl } from "cdktf";

export class ContainerRevision extends TerraformResource {
  static readonly tfResourceType = "terraform_data";
  private triggers: Record<string, string>;

  constructor(scope: Construct, id: string, config: { readonly triggersReplace: Readonly<Record<string, string>> }) {
    super(scope, id, {
      terraformResourceType: ContainerRevision.tfResourceType,
      terraformGeneratorMetadata: { providerName: "terraform" },
    });
    this.triggers = { ...config.triggersReplace };
  }

  /** The values whose change replaces the container. */
  get triggersReplaceInput(): Readonly<Record<string, string>> {
    return { ...this.triggers };
  }

  /**
   * Adds a value whose change replaces the container, for what neither the image alias nor the
   * user-data shows (e.g. the software version a pre-built image is meant to carry).
   */
  addTrigger(name: string, value: string): void {
    if (name in this.triggers) throw new Error(`${this.node.path}: trigger ${JSON.stringify(name)} is already set`);
    this.triggers[name] = value;
  }

  /** Sets (or adds) trigger values, e.g. after devices were added to the container. */
  setTriggers(values: Readonly<Record<string, string>>): void {
    this.triggers = { ...this.triggers, ...values };
  }

  /** The bare address (`terraform_data.<name>`) that `replace_triggered_by` needs. */
  get address(): string {
    return `${ContainerRevision.tfResourceType}.${this.friendlyUniqueId}`;
  }

  protected synthesizeAttributes(): { [name: string]: any } {
    return { triggers_replace: hashMapper(anyToTerraform)(this.triggers) };
  }

  protected synthesizeHclAttributes(): { [name: string]: any } {
    return { triggers_replace: hashMapperHcl(anyToHclTerraform)(this.triggers) };
  }
}
