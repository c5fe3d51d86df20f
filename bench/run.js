#!/usr/bin/env node
/**
 * Synthesis benchmarks (SPEC §5), run by `npm run bench` after a build. Every measurement is a
 * fresh `node` process: wall time of the whole process, peak RSS from `/usr/bin/time -f %M`.
 * Cases run interleaved, round after round, so that a burst of load on the machine hits every
 * case alike; warm-up rounds are not counted; the report is the median of each case.
 *
 *   node bench/run.js [--runs 11] [--cli-runs 5] [--warmup 2] [--no-cli] [--out bench/results/latest.json]
 *
 * Progress goes to stderr, the table to stdout, everything to the JSON file.
 */
const fs = require("fs");
const os = require("os");
const path = require("path");
const { spawnSync } = require("child_process");

const ROOT = path.join(__dirname, "..");
const FLOOR = path.join(__dirname, "floor");
const TIME = "/usr/bin/time";

function options(argv) {
  const opts = { runs: 11, cliRuns: 5, warmup: 2, cli: true, out: path.join(__dirname, "results", "latest.json") };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${arg} needs a value`);
      return v;
    };
    if (arg === "--runs") opts.runs = positive(arg, value());
    else if (arg === "--cli-runs") opts.cliRuns = positive(arg, value());
    else if (arg === "--warmup") opts.warmup = Number(value());
    else if (arg === "--no-cli") opts.cli = false;
    else if (arg === "--out") opts.out = path.resolve(value());
    else throw new Error(`unknown argument ${arg}; see the header of bench/run.js`);
  }
  return opts;
}

function positive(name, text) {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a positive integer, got ${text}`);
  return n;
}

/** The stacks each case must produce, checked on every run so a broken app is never timed. */
const projectIds = (n) => ["ryo-matrix", ...Array.from({ length: n - 1 }, (_, i) => `matrix-${i + 1}`)];

const node = process.execPath;
const IN_PROCESS = [
  { name: "floor", what: "one terraform_data resource, compiled JS", command: [node, "main.js"], cwd: FLOOR, stacks: ["floor"] },
  { name: "floor-data", what: "the same with cdktf's DataResource: + one `terraform version` check", command: [node, "data-resource.js"], cwd: FLOOR, stacks: ["floor"] },
  { name: "full", what: "MatrixStandalone, example configuration (node dist/main.js)", command: [node, "dist/main.js"], cwd: ROOT, stacks: ["ryo-matrix"] },
  ...[1, 5, 20].map((n) => ({
    name: `projects-${n}`,
    what: `${n} Matrix project${n > 1 ? "s" : ""} on one host (node bench/projects.js ${n})`,
    command: [node, "bench/projects.js", String(n)],
    cwd: ROOT,
    stacks: projectIds(n),
  })),
];
const npx = process.platform === "win32" ? "npx.cmd" : "npx";
const CLI = [
  { name: "floor-cli", what: "npx cdktf synth in bench/floor", command: [npx, "cdktf", "synth"], cwd: FLOOR, stacks: ["floor"], cli: true },
  { name: "full-cli", what: "npx cdktf synth in the repository (README)", command: [npx, "cdktf", "synth"], cwd: ROOT, stacks: ["ryo-matrix"], cli: true },
];

const haveTime = fs.existsSync(TIME);

/** Runs one case in a fresh process; returns wall milliseconds and peak RSS in KiB. */
function measure(benchCase) {
  const outdir = fs.mkdtempSync(path.join(os.tmpdir(), `bench-${benchCase.name}-`));
  const rssFile = path.join(outdir, "..", `${path.basename(outdir)}.rss`);
  // The CLI passes its --output to the app as CDKTF_OUTDIR; the app is given it directly.
  const args = benchCase.cli ? [...benchCase.command, "--output", outdir] : benchCase.command;
  const env = { ...process.env, CDKTF_OUTDIR: outdir };
  const [file, argv] = haveTime ? [TIME, ["-f", "%M", "-o", rssFile, ...args]] : [args[0], args.slice(1)];
  try {
    const start = process.hrtime.bigint();
    const result = spawnSync(file, argv, { cwd: benchCase.cwd, env, encoding: "utf8", maxBuffer: 64 << 20 });
    const wallMs = Number(process.hrtime.bigint() - start) / 1e6;
    if (result.error) throw result.error;
    if (result.status !== 0) {
      throw new Error(`${benchCase.name}: ${args.join(" ")} exited ${result.status}\n${result.stdout}\n${result.stderr}`);
    }
    for (const stack of benchCase.stacks) {
      if (!fs.existsSync(path.join(outdir, "stacks", stack, "cdk.tf.json"))) {
        throw new Error(`${benchCase.name}: stack ${stack} was not synthesized into ${outdir}\n${result.stderr}`);
      }
    }
    const rssKiB = haveTime ? Number(fs.readFileSync(rssFile, "utf8").trim().split("\n").pop()) : null;
    return { wallMs, rssKiB };
  } finally {
    fs.rmSync(outdir, { recursive: true, force: true });
    fs.rmSync(rssFile, { force: true });
  }
}

/**
 * What the app loads, from one extra run: generated bindings imported per resource (never a
 * provider's index or lazy-index), and no ajv while the precompiled configuration validator is
 * up to date (see scripts/compile-config-schema.js).
 */
function hotPath() {
  const outdir = fs.mkdtempSync(path.join(os.tmpdir(), "bench-hot-path-"));
  const code = 'process.on("exit", () => console.log(JSON.stringify(Object.keys(require.cache)))); require("./dist/main.js");';
  try {
    const result = spawnSync(node, ["-e", code], { cwd: ROOT, env: { ...process.env, CDKTF_OUTDIR: outdir }, encoding: "utf8" });
    if (result.status !== 0) throw new Error(`hot-path check: node dist/main.js exited ${result.status}\n${result.stderr}`);
    const loaded = JSON.parse(result.stdout.trim().split("\n").pop()).map((file) => path.relative(ROOT, file).split(path.sep).join("/"));
    const bindings = loaded.filter((file) => file.startsWith("dist/gen/"));
    const check = {
      modulesLoaded: loaded.length,
      generatedBindingFiles: bindings,
      providerIndexes: bindings.filter((file) => /^dist\/gen\/providers\/[^/]+\/(index|lazy-index)\.js$/.test(file)),
      ajvLoaded: loaded.includes("node_modules/ajv/dist/core.js"),
    };
    if (check.providerIndexes.length > 0) {
      process.stderr.write(`bench: WARNING: provider index files on the hot path: ${check.providerIndexes.join(", ")}\n`);
    }
    if (check.ajvLoaded) {
      process.stderr.write("bench: WARNING: ajv compiled the schema: the precompiled validator is stale (see scripts/compile-config-schema.js)\n");
    }
    return check;
  } finally {
    fs.rmSync(outdir, { recursive: true, force: true });
  }
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** Runs every case of `cases` once per round, `warmup` uncounted rounds first. */
function rounds(cases, runs, warmup, results) {
  for (let round = 1 - warmup; round <= runs; round++) {
    const label = round <= 0 ? `warm-up ${round + warmup}/${warmup}` : `round ${round}/${runs}`;
    const line = [];
    for (const benchCase of cases) {
      const { wallMs, rssKiB } = measure(benchCase);
      line.push(`${benchCase.name} ${wallMs.toFixed(0)} ms`);
      if (round > 0) {
        results[benchCase.name].wallMs.push(Math.round(wallMs * 10) / 10);
        if (rssKiB !== null) results[benchCase.name].peakRssKiB.push(rssKiB);
      }
    }
    process.stderr.write(`bench: ${label}: ${line.join(", ")}\n`);
  }
}

function main() {
  const opts = options(process.argv.slice(2));
  for (const file of ["dist/main.js", "dist/lib/config.js"]) {
    if (!fs.existsSync(path.join(ROOT, file))) throw new Error(`${file} is missing: run npm run build (npm run bench does)`);
  }
  const hot = hotPath();
  process.stderr.write(
    `bench: hot path: ${hot.modulesLoaded} modules, ${hot.generatedBindingFiles.length} binding files, ` +
      `${hot.providerIndexes.length} provider indexes, ajv ${hot.ajvLoaded ? "loaded" : "not loaded"}\n`,
  );
  const cases = [...IN_PROCESS, ...(opts.cli ? CLI : [])];
  const results = Object.fromEntries(cases.map((c) => [c.name, { what: c.what, command: c.command.map((a) => (a === node ? "node" : a)).join(" "), cwd: path.relative(ROOT, c.cwd) || ".", wallMs: [], peakRssKiB: [] }]));

  process.stderr.write(`bench: in-process synth, ${opts.runs} rounds after ${opts.warmup} warm-up\n`);
  rounds(IN_PROCESS, opts.runs, opts.warmup, results);
  if (opts.cli) {
    const warmup = Math.min(opts.warmup, 1);
    process.stderr.write(`bench: cdktf synth CLI, ${opts.cliRuns} rounds after ${warmup} warm-up\n`);
    rounds(CLI, opts.cliRuns, warmup, results);
  }

  for (const r of Object.values(results)) {
    r.medianWallMs = Math.round(median(r.wallMs) * 10) / 10;
    r.medianPeakRssMiB = r.peakRssKiB.length ? Math.round((median(r.peakRssKiB) / 1024) * 10) / 10 : null;
  }
  const ratio = (a, b) => (results[a] && results[b] ? Math.round((results[a].medianWallMs / results[b].medianWallMs) * 100) / 100 : null);
  const targets = [
    { name: "full ÷ floor", value: ratio("full", "floor"), limit: 2 },
    { name: "20 projects ÷ 1 project", value: ratio("projects-20", "projects-1"), limit: 10 },
    ...(opts.cli ? [{ name: "CLI ÷ floor CLI", value: ratio("full-cli", "floor-cli"), limit: 1.5 }] : []),
  ].map((t) => ({ ...t, met: t.value !== null && t.value <= t.limit }));
  const perProject = (n) => Math.round(((results[`projects-${n}`].medianWallMs - results["projects-1"].medianWallMs) / (n - 1)) * 10) / 10;
  const extra = {
    "full ÷ floor-data": ratio("full", "floor-data"),
    "5 projects ÷ 1 project": ratio("projects-5", "projects-1"),
  };
  const marginal = { "ms per added project, 1→5": perProject(5), "ms per added project, 1→20": perProject(20) };

  const rows = Object.entries(results).map(([name, r]) => [
    name,
    `${r.medianWallMs.toFixed(0)} ms`,
    `${Math.min(...r.wallMs).toFixed(0)}–${Math.max(...r.wallMs).toFixed(0)} ms`,
    r.medianPeakRssMiB === null ? "n/a" : `${r.medianPeakRssMiB.toFixed(1)} MiB`,
    r.what,
  ]);
  const header = ["case", "median wall", "range", "peak RSS", "what"];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
  const format = (row) => row.map((cell, i) => cell.padEnd(widths[i])).join("  ").trimEnd();
  console.log(format(header));
  for (const row of rows) console.log(format(row));
  console.log("");
  for (const t of targets) console.log(`${t.name}: ${t.value}× (target ≤ ${t.limit}×) ${t.met ? "met" : "MISSED"}`);
  for (const [name, value] of Object.entries(extra)) console.log(`${name}: ${value}×`);
  for (const [name, value] of Object.entries(marginal)) console.log(`${name}: ${value} ms`);

  const cpus = os.cpus();
  const report = {
    date: new Date().toISOString(),
    machine: { node: process.version, platform: `${os.platform()} ${os.release()}`, cpus: cpus.length, cpuModel: cpus[0]?.model, memoryMiB: Math.round(os.totalmem() / 2 ** 20) },
    method: { runs: opts.runs, cliRuns: opts.cli ? opts.cliRuns : 0, warmup: opts.warmup, wall: "whole process, hrtime around spawn", peakRss: haveTime ? "/usr/bin/time -f %M (KiB)" : "unavailable" },
    hotPath: hot,
    results,
    ratios: Object.fromEntries([...targets.map((t) => [t.name, t.value]), ...Object.entries(extra)]),
    marginal,
    targets,
  };
  fs.mkdirSync(path.dirname(opts.out), { recursive: true });
  fs.writeFileSync(opts.out, `${JSON.stringify(report, null, 2)}\n`);
  process.stderr.write(`bench: wrote ${path.relative(process.cwd(), opts.out) || opts.out}\n`);
}

main();
