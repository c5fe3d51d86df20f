/**
 * The README's sample of invalid-configuration output is the tool's real output: this test runs
 * `node dist/main.js my-server.yaml` on the README's own sample input and compares what it prints
 * with the README's copy. UPDATE_README=1 writes the printed text into the README instead.
 * Each input line marked `# wrong:` must be named in the output, so the sample keeps showing every
 * problem at once.
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { spawnSync } from "child_process";

const ROOT = path.join(__dirname, "..");
const README = path.join(ROOT, "README.md");
const MAIN = path.join(ROOT, "dist", "main.js");
const INPUT_MARK = "<!-- readme-errors:input -->";
const OUTPUT_MARK = "<!-- readme-errors:output -->";

/** The fenced block right after `mark`: its text and where its body starts and ends in `readme`. */
function blockAfter(readme: string, mark: string): { body: string; start: number; end: number } {
  const at = readme.indexOf(mark);
  if (at < 0) throw new Error(`README.md has no ${mark}`);
  const open = /^```[a-z]*\n/m.exec(readme.slice(at + mark.length));
  if (!open || readme.slice(at + mark.length, at + mark.length + open.index).trim() !== "") {
    throw new Error(`README.md: ${mark} must be followed by a fenced block`);
  }
  const start = at + mark.length + open.index + open[0].length;
  const end = readme.indexOf("\n```", start - 1);
  if (end < 0) throw new Error(`README.md: the block after ${mark} is not closed`);
  return { body: readme.slice(start, end + 1), start, end: end + 1 };
}

/** Dotted paths of the YAML mapping lines that carry a `# wrong:` comment (mappings only). */
function markedPaths(yaml: string): string[] {
  const parents: { indent: number; key: string }[] = [];
  const marked: string[] = [];
  for (const line of yaml.split("\n")) {
    const m = /^( *)([A-Za-z0-9_]+):/.exec(line);
    if (!m) continue;
    const indent = m[1].length;
    while (parents.length > 0 && parents[parents.length - 1].indent >= indent) parents.pop();
    const dotted = [...parents.map((p) => p.key), m[2]].join(".");
    if (/#\s*wrong:/.test(line)) marked.push(dotted);
    parents.push({ indent, key: m[2] });
  }
  return marked;
}

describe("README", () => {
  test("shows what the tool prints for its sample of an invalid configuration", () => {
    if (!fs.existsSync(MAIN)) throw new Error(`${MAIN} is missing: run npm run build`);
    const readme = fs.readFileSync(README, "utf8");
    const input = blockAfter(readme, INPUT_MARK).body;
    const wrong = markedPaths(input);
    expect(wrong.length).toBeGreaterThanOrEqual(2);

    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "matrix-readme-"));
    try {
      fs.writeFileSync(path.join(dir, "my-server.yaml"), input);
      const result = spawnSync(process.execPath, [MAIN, "my-server.yaml"], {
        cwd: dir,
        encoding: "utf8",
        env: { PATH: process.env.PATH, HOME: process.env.HOME, CDKTF_OUTDIR: path.join(dir, "cdktf.out") },
      });
      expect(result.status).toBe(1);
      expect(result.stdout).toBe("");
      expect(fs.existsSync(path.join(dir, "cdktf.out"))).toBe(false);
      const printed = result.stderr.endsWith("\n") ? result.stderr : `${result.stderr}\n`;
      expect(printed).not.toMatch(/\n\s+at /); // no stack trace
      for (const field of wrong) expect(printed).toContain(`${field}:`);

      const output = blockAfter(readme, OUTPUT_MARK);
      if (process.env.UPDATE_README === "1") {
        fs.writeFileSync(README, readme.slice(0, output.start) + printed + readme.slice(output.end));
      } else if (output.body !== printed) {
        throw new Error(
          `README.md's sample output is not what the tool prints; run UPDATE_README=1 npx jest test/readme.test.ts\n` +
            `--- README\n${output.body}--- printed\n${printed}`,
        );
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
