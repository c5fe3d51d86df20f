// Runs the suite's files in a fixed order, volumes.lxd.ts last: it replaces and stops
// containers, which the other files must not see half-way.
const Sequencer = require("@jest/test-sequencer").default;

class LxdSequencer extends Sequencer {
  sort(tests) {
    const last = (t) => (t.path.endsWith("volumes.lxd.ts") ? 1 : 0);
    return [...tests].sort((a, b) => last(a) - last(b) || a.path.localeCompare(b.path));
  }
}

module.exports = LxdSequencer;
