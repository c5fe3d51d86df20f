/**
 * The floor with cdktf's own DataResource instead of a plain TerraformResource: the same one
 * `terraform_data` resource, plus the `terraform version` check DataResource runs at synth.
 * The difference to floor/main.js is what that check costs; the Matrix stack runs it once.
 */
const { App, TerraformStack, DataResource } = require("cdktf");

const app = new App();
const stack = new TerraformStack(app, "floor");
new DataResource(stack, "data", { input: "floor" });
app.synth();
