#!/usr/bin/env node
// Keeps install-time scripts out of the published package.json. The repository needs `prepare`
// (so `npm ci` generates the bindings and builds dist/), but a package that ships one makes npm 11
// warn on every install from a tarball, and its consumers never need it: the tarball already
// holds dist/. `npm pack` and `npm publish` run `prepack` (build, then --strip) and `postpack`
// (--restore), so only the packed copy of package.json loses the script.
//
// Usage: node scripts/pack-manifest.js --strip | --restore | --help
"use strict";
const fs = require("fs");
const path = require("path");

const root = path.resolve(__dirname, "..");
const manifest = path.join(root, "package.json");
// Outside the package's "files", so it is never packed; git-ignored.
const backup = path.join(root, ".package.json.prepack");
const INSTALL_SCRIPTS = ["preinstall", "install", "postinstall", "prepare"];

function restore() {
  if (!fs.existsSync(backup)) return false;
  fs.copyFileSync(backup, manifest);
  fs.rmSync(backup);
  return true;
}

function strip() {
  // A pack that failed before postpack left the backup: start again from the original.
  if (restore()) console.log("[pack-manifest] restored package.json left stripped by an interrupted pack");
  const text = fs.readFileSync(manifest, "utf8");
  const pkg = JSON.parse(text);
  const removed = INSTALL_SCRIPTS.filter((name) => pkg.scripts && name in pkg.scripts);
  if (removed.length === 0) return;
  fs.writeFileSync(backup, text);
  for (const name of removed) delete pkg.scripts[name];
  fs.writeFileSync(manifest, `${JSON.stringify(pkg, null, 2)}\n`);
  console.log(`[pack-manifest] packing without the install-time script(s) ${removed.join(", ")}; postpack restores them`);
}

const [mode] = process.argv.slice(2);
if (mode === "--strip") strip();
else if (mode === "--restore") {
  if (restore()) console.log("[pack-manifest] package.json restored");
} else {
  const help = "usage: node scripts/pack-manifest.js --strip | --restore\n" +
    "  --strip    drop install-time scripts (prepare, ...) from package.json before packing, keeping a backup\n" +
    "  --restore  put the backed-up package.json back (postpack)";
  if (mode === "--help" || mode === "-h") console.log(help);
  else {
    console.error(help);
    process.exit(2);
  }
}
