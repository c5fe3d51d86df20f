// The real-LXD suite (npm run test:lxd through scripts/lxd-suite.sh); never part of `npm test`.
// One worker: the tests share one deployment, made by the global setup.
const path = require("path");

module.exports = {
  rootDir: path.resolve(__dirname, "..", ".."),
  roots: ["<rootDir>/test/lxd"],
  testMatch: ["**/*.lxd.ts"],
  testEnvironment: "node",
  transform: { "^.+\\.ts$": "@swc/jest" },
  globalSetup: "<rootDir>/test/lxd/global-setup.ts",
  globalTeardown: "<rootDir>/test/lxd/support/teardown.ts",
  testSequencer: "<rootDir>/test/lxd/sequencer.js",
  maxWorkers: 1,
  testTimeout: 300000,
};
