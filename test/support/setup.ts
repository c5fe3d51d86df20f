import { Testing } from "cdktf";
import { checkStack } from "../../scripts/check-provider-schemas";

Testing.setupJest();

/**
 * Every stack a test synthesizes is also checked against the committed provider schemas of
 * its LXD dialect (scripts/check-provider-schemas.js): a construct that writes an attribute
 * the provider does not know fails the suite that built it, whatever that suite asserts.
 */
const synthesized: { test: string; json: string }[] = [];
const synth = Testing.synth.bind(Testing);
Testing.synth = (stack, runValidations) => {
  const json = synth(stack, runValidations);
  synthesized.push({ test: expect.getState().currentTestName ?? "(outside a test)", json });
  return json;
};

afterAll(() => {
  const problems = synthesized.flatMap(({ test, json }) => checkStack(JSON.parse(json), { label: test }));
  synthesized.length = 0;
  if (problems.length > 0) throw new Error(`synthesized stacks do not conform to the provider schemas:\n${problems.join("\n")}`);
});
