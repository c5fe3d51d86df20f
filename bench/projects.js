/**
 * Benchmark app: N Matrix projects on one host, from compiled JS (run `npm run build` first).
 * Project 0 is the example configuration and deploys the shared modules; projects 1…N-1 are
 * copies with their own id, domain and host parts (20+3i, 21+3i, 22+3i, below the DHCP range
 * at 100) that register with project 0's modules, the way test/matrix-standalone.test.ts builds
 * two projects. Every project's configuration goes through the same validation as a file would.
 *
 *   node bench/projects.js [N=1]      (output in $CDKTF_OUTDIR, default cdktf.out)
 */
const fs = require("fs");
const path = require("path");
const { App } = require("cdktf");
const { stringify } = require("yaml");
const { parseConfig } = require("../dist/lib/config");
const { MatrixStandaloneStack } = require("../dist/constructs/matrix/matrix-standalone-stack");

const EXAMPLE = path.join(__dirname, "..", "config", "example.yaml");
const DHCP_FIRST = 100;

/** The configuration text of project `i` (0 is the example as it is). */
function projectConfig(example, i) {
  if (i === 0) return stringify(example);
  const base = 20 + 3 * i;
  if (base + 2 >= DHCP_FIRST) throw new Error(`project ${i}: host parts ${base}-${base + 2} would reach the DHCP range at ${DHCP_FIRST}`);
  return stringify({
    ...example,
    modules: { ...example.modules, deploy: false },
    project: {
      ...example.project,
      id: `matrix-${i}`,
      domain: `m${i}.example.org`,
      host_parts: { synapse: base, element: base + 1, synapse_admin: base + 2 },
    },
  });
}

function main() {
  const count = Number(process.argv[2] ?? 1);
  if (!Number.isInteger(count) || count < 1) throw new Error(`usage: node bench/projects.js [N ≥ 1], got ${process.argv[2]}`);
  const example = parseConfig(fs.readFileSync(EXAMPLE, "utf8"), "example.yaml");
  const app = new App();
  let first;
  for (let i = 0; i < count; i++) {
    const config = parseConfig(projectConfig(example, i), `project-${i}.yaml`);
    const stack = new MatrixStandaloneStack(app, config.project.id, first ? { config, host: first.host, modules: first.modules } : { config });
    first ??= stack;
  }
  app.synth();
}

main();
