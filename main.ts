/**
 * The self-hoster's app: reads one YAML configuration file, validates it, and synthesizes the
 * MatrixStandalone stack. The file is the first argument, else $MATRIX_CONFIG, else
 * config/example.yaml. On invalid input it prints every problem and exits non-zero before
 * anything is written, so an existing cdktf.out stays as it was. The stack is built and its
 * construct validations run before synthesis, so a rule the configuration checks missed is
 * reported the same way, never as a stack trace.
 */
import * as fs from "fs";
import * as path from "path";
import { App } from "cdktf";
import { loadConfig } from "./lib/config";
import { ValidationError } from "./lib/problems";
import { MatrixStandaloneStack } from "./constructs/matrix/matrix-standalone-stack";

const root = path.basename(__dirname) === "dist" ? path.dirname(__dirname) : __dirname;

/** Prints a problem report (no stack trace unless MATRIX_DEBUG is set) and returns the exit code. */
function report(err: unknown, source: string): number {
  if (err instanceof ValidationError) {
    console.error(err.message);
  } else {
    const message = err instanceof Error ? err.message : String(err);
    console.error(`${source} could not be synthesized:\n  - ${message.split("\n").join("\n    ")}`);
  }
  if (process.env.MATRIX_DEBUG && err instanceof Error) console.error(err.stack);
  return 1;
}

/** Every construct's validation errors, collected before synthesis writes anything. */
function validationErrors(app: App): string[] {
  return app.node.findAll().flatMap((c) => c.node.validate().map((message) => `${c.node.path}: ${message}`));
}

function main(): number {
  const file = path.resolve(process.argv[2] ?? process.env.MATRIX_CONFIG ?? path.join(root, "config", "example.yaml"));
  const source = path.relative(process.cwd(), file) || file;
  let config;
  try {
    config = loadConfig(file);
  } catch (err) {
    return report(err, source);
  }
  // App makes <outdir>/stacks when it is missing; on a refusal those empty directories go again.
  const outdir = process.env.CDKTF_OUTDIR ?? "cdktf.out";
  const madeByApp = [path.join(outdir, "stacks"), outdir].filter((dir) => !fs.existsSync(dir));
  const app = new App();
  try {
    new MatrixStandaloneStack(app, config.project.id, { config });
    const errors = validationErrors(app);
    if (errors.length > 0) {
      throw new ValidationError(
        errors.map((message) => ({ path: "(stack)", message })),
        `${source} passed the configuration checks but the stack refused it (please report this)`,
      );
    }
  } catch (err) {
    for (const dir of madeByApp) fs.rmdirSync(dir);
    if (err instanceof ValidationError && !err.message.startsWith(source)) {
      return report(new ValidationError(err.problems, `${source} passed the configuration checks but a construct refused it (please report this): ${err.message.split(":\n")[0]}`), source);
    }
    return report(err, source);
  }
  app.synth();
  return 0;
}

process.exitCode = main();
