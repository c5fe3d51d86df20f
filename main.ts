/**
 * The self-hoster's app: reads one YAML configuration file, validates it, and synthesizes the
 * MatrixStandalone stack. The file is the first argument, else $MATRIX_CONFIG, else
 * config/example.yaml. On invalid input it prints every problem and exits non-zero before
 * anything is written, so an existing cdktf.out stays as it was.
 */
import * as path from "path";
import { App } from "cdktf";
import { loadConfig } from "./lib/config";
import { ValidationError } from "./lib/problems";
import { MatrixStandaloneStack } from "./constructs/matrix/matrix-standalone-stack";

const root = path.basename(__dirname) === "dist" ? path.dirname(__dirname) : __dirname;

function main(): void {
  const file = path.resolve(process.argv[2] ?? process.env.MATRIX_CONFIG ?? path.join(root, "config", "example.yaml"));
  let config;
  try {
    config = loadConfig(file);
  } catch (err) {
    if (err instanceof ValidationError) {
      console.error(err.message);
      process.exit(1);
    }
    throw err;
  }
  const app = new App();
  new MatrixStandaloneStack(app, config.project.id, { config });
  app.synth();
}

main();
