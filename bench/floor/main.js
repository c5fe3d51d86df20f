/**
 * The benchmark floor: the smallest useful cdktf app, one stack with one built-in
 * `terraform_data` resource and no providers. Everything the Matrix stack costs above this is
 * ours (or grows with what we build); this is cdktf's and Node's fixed cost.
 * Plain TerraformResource rather than cdktf's DataResource: DataResource also spawns
 * `terraform version` at synth to check the binary (see README "Performance").
 */
const { App, TerraformStack, TerraformResource } = require("cdktf");

const app = new App();
const stack = new TerraformStack(app, "floor");
const data = new TerraformResource(stack, "data", { terraformResourceType: "terraform_data" });
data.addOverride("input", "floor");
app.synth();
