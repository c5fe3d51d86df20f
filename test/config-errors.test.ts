/**
 * Bad configurations as a self-hoster meets them: `node dist/main.js <file>` must name the YAML
 * field, say what is valid, exit non-zero, print no stack trace and leave cdktf.out as it was.
 * Unusual but valid configurations must synthesize.
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { spawn, spawnSync } from "child_process";
import { parse, stringify } from "yaml";
import schema from "../schema/matrix-config.schema.json";

const ROOT = path.join(__dirname, "..");
const MAIN = path.join(ROOT, "dist", "main.js");
const EXAMPLE_TEXT = fs.readFileSync(path.join(ROOT, "config", "example.yaml"), "utf8");
const example = () => parse(EXAMPLE_TEXT);

/** The example with one change applied, as YAML text. */
function variant(change: (c: any) => void): string {
  const config = example();
  change(config);
  return stringify(config);
}

/** Text lines in place of the example's `from` line (for raw YAML cases). */
const replaced = (from: string, to: string) => {
  if (!EXAMPLE_TEXT.includes(from)) throw new Error(`the example has no ${JSON.stringify(from)}`);
  return EXAMPLE_TEXT.replace(from, to);
};

let dir: string;
beforeAll(() => {
  if (!fs.existsSync(MAIN)) throw new Error(`${MAIN} is missing: run npm run build`);
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "matrix-config-errors-"));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

interface Run {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly ms: number;
}

const slug = (name: string) => name.replace(/[^a-z0-9]+/gi, "-");

/** `node dist/main.js <file>` with CDKTF_OUTDIR=outdir, as a self-hoster runs it. */
function synth(content: string | Buffer, name: string, outdir: string): Promise<Run> {
  const file = path.join(dir, `${slug(name)}.yaml`);
  fs.writeFileSync(file, content);
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [MAIN, file], {
      cwd: ROOT,
      env: { PATH: process.env.PATH, HOME: process.env.HOME, CDKTF_OUTDIR: outdir },
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("error", reject);
    child.on("close", (status) => resolve({ status, stdout, stderr, ms: Date.now() - started }));
  });
}

/** Runs every case a few at a time (each is a whole node process), keyed by name. */
async function runAll(cases: readonly (readonly [string, string | Buffer, ...unknown[]])[], outdir: (name: string) => string): Promise<Map<string, Run>> {
  const results = new Map<string, Run>();
  const queue = [...cases];
  const worker = async () => {
    for (let next = queue.shift(); next; next = queue.shift()) results.set(next[0], await synth(next[1], next[0], outdir(next[0])));
  };
  await Promise.all(Array.from({ length: Math.max(2, os.cpus().length) }, worker));
  return results;
}

// [description, file content, YAML path named in the error, what the message must say]
const invalid: [string, string | Buffer, string, RegExp][] = [
  // The YAML parser
  ["a duplicate top-level key", replaced("modules:\n", "project:\n  id: x\nmodules:\n"), "project", /given twice \(lines \d+ and \d+\)/],
  ["a duplicate nested key", replaced("  domain: example.com\n", "  domain: example.com\n  domain: example.org\n"), "project.domain", /given twice/],
  ["two YAML documents in one file", `${EXAMPLE_TEXT}---\nproject: {}\n`, "line 39", /a second YAML document starts here/],
  ["an alias expansion bomb", aliasBomb(), "(whole file)", /expands aliases .* more than 100 times/],
  ["a UTF-16 file", Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(EXAMPLE_TEXT, "utf16le")]), "(whole file)", /UTF-16.*save it as UTF-8/],
  ["a UTF-16 file without a byte order mark", Buffer.from(EXAMPLE_TEXT, "utf16le"), "(whole file)", /NUL bytes.*UTF-8/],
  ["a Latin-1 file", Buffer.from(replaced("username: admin", "username: admin # Zoë").replace("ë", "\u00eb"), "latin1"), "(whole file)", /not valid UTF-8 \(first bad byte on line 29\)/],
  ["an empty file", "", "(whole file)", /is empty/],
  ["a 2 MiB file", `${EXAMPLE_TEXT}# ${"x".repeat(2 * 1024 * 1024)}\n`, "(whole file)", /is 2\.0 MiB; a configuration is a few kilobytes/],
  ["a file of comments only", "# nothing yet\n", "(whole file)", /is empty/],
  ["a list at the top level", "- host\n- project\n", "(top level)", /must be a mapping of settings .*got a list/],
  ["a scalar at the top level", "example.com\n", "(top level)", /must be a mapping of settings .*got the text "example.com"/],
  ["a binary value", replaced("storage_pool: default", "storage_pool: !!binary ZGVmYXVsdA=="), "host.lxd.storage_pool", /uses the YAML tag !!binary \(line 14\); write a plain value/],
  ["an application tag", replaced("  id: ryo-matrix", "  id: !Ref ProjectId"), "project.id", /YAML tag !Ref/],
  ["a list as a key", replaced("modules:\n", "? [a, b]\n: 1\nmodules:\n"), "line 16", /a key is a list or a mapping; keys are plain names/],
  ["nesting thousands deep", `a: ${"[".repeat(20000)}${"]".repeat(20000)}\n`, "line 1, column 803", /nesting goes too deep/],
  ["a key of 1000 characters", `${"k".repeat(1000)}: 1\n${EXAMPLE_TEXT}`, `${"k".repeat(119)}… (1000 characters)`, /is not a known setting/],
  ["a key of 100 000 characters", `${"k".repeat(100000)}: 1\n${EXAMPLE_TEXT}`, "line 1, column 1", /must be at most 1024 chars after the start of an implicit block mapping key/],
  ["a tab used for indentation", replaced("  id: matrixhost", "\tid: matrixhost"), "line 7, column 1", /a tab is used for indentation; indent with spaces/],
  ["an unclosed flow sequence", replaced("storage_pool: default", "storage_pool: [default"), "line 16, column 1", /flow sequence .* must be sufficiently indented and end with a \]/],
  // What the schema checks, in plain words
  ["an upper-case domain", variant((c) => (c.project.domain = "Example.com")), "project.domain", /must be a lower-case DNS name such as example.com/],
  ["a port given as text", variant((c) => (c.modules.coturn.listening_port = "3478")), "modules.coturn.listening_port", /must be a whole number, got the text "3478"/],
  ["yes for a boolean", variant((c) => (c.project.allow_public_rooms_without_auth = "yes")), "project.allow_public_rooms_without_auth", /must be true or false/],
  ["a typo in a key", variant((c) => (c.project.domian = "example.org")), "project.domian", /not a known setting; valid keys here: .*domain/],
  ["room complexity 0", variant((c) => (c.project.room_complexity = 0)), "project.room_complexity", /^must be a number above 0, got 0$/],
  ["an empty SMTP username", variant((c) => (c.project.smtp = { host: "smtp.example.com", port: 587, username: "" })), "project.smtp.username", /^is not valid, got "": must be one line of text, not blank/],
  ["a huge value", variant((c) => (c.project.domain = `${"a".repeat(100000)}.com`)), "project.domain", /^must be at most 253 characters, got 100004$/],
  ["a huge value that is quoted", variant((c) => (c.project.smtp = { host: "smtp.example.com", port: 587, from: "x".repeat(100000) })), "project.smtp.from", /got "x{10,60}…" \(100000 characters\)/],
  ["a country code Element does not know", variant((c) => (c.project.default_country_code = "XX")), "project.default_country_code", /ISO 3166-1 alpha-2/],
  ["a footer link text of spaces", variant((c) => (c.project.element_footer_links[0].text = "   ")), "project.element_footer_links[0].text", /not blank/],
  // Secrets written into the file
  ["the admin password in the file", variant((c) => (c.project.admin.password = "Secret-Password-1")), "project.admin.password", /export TF_VAR_admin_password/],
  ["the SMTP password in the file", variant((c) => (c.project.smtp = { host: "smtp.example.com", port: 587, username: "u", password: "p" })), "project.smtp.password", /export TF_VAR_smtp_password/],
  ["a TURN secret in the file", variant((c) => (c.modules.coturn.shared_secret = "s3cret")), "modules.coturn.shared_secret", /secrets never go into this file/],
  // Checks that used to live only in the constructs
  ["an e-mail address with an apostrophe", variant((c) => (c.project.admin.email = "o'brien@example.com")), "project.admin.email", /e-mail address such as admin@example.com/],
  ["an e-mail address with a numeric top-level domain", variant((c) => (c.project.admin.email = "admin@example.123")), "project.admin.email", /e-mail address/],
  ["a relay range too large", variant((c) => Object.assign(c.modules.coturn, { min_port: 20000, max_port: 60000 })), "modules.coturn.max_port", /may span at most 16384 ports/],
  ["privileged relay ports", variant((c) => Object.assign(c.modules.coturn, { min_port: 600, max_port: 1600 })), "modules.coturn.min_port", /unprivileged: must be at least 1024/],
  ["a TURN domain that is the Matrix host name", variant((c) => (c.project.turn_domain = "matrix.example.com")), "project.turn_domain", /have their own certificate/],
  ["a TURN domain that is the Element host name", variant((c) => (c.project.turn_domain = "element.example.com")), "project.turn_domain", /turn\.example\.com/],
  ["an http release URL", variant((c) => (c.project.element = { url: "http://example.com/element.tar.gz" })), "project.element.url", /https:\/\/ URL, or a file:\/\/\/ path/],
  ["a relative file URL", variant((c) => (c.project.synapse_admin = { url: "file://releases/sa.tar.gz" })), "project.synapse_admin.url", /file:\/\/\/ path of the tarball inside the container/],
  ["an upper-case public IPv6 address", variant((c) => (c.host.public_ipv6 = "2001:DB8::10")), "host.public_ipv6", /lower case/],
  // Accepted before, failing at deploy time
  ["a host id too long for a bridge name", variant((c) => (c.host.id = "matrixhostnumber17")), "host.id", /Linux limits that to 15 characters \(got 18\)/],
  ["a loopback container network", variant((c) => (c.host.ipv4_network_part = "127.0.5")), "host.ipv4_network_part", /loopback range/],
  ["a link-local container network", variant((c) => (c.host.ipv4_network_part = "169.254.3")), "host.ipv4_network_part", /link-local range/],
  ["a multicast container network", variant((c) => (c.host.ipv4_network_part = "239.1.1")), "host.ipv4_network_part", /multicast range/],
  ["a reserved container network", variant((c) => (c.host.ipv4_network_part = "250.1.1")), "host.ipv4_network_part", /reserved range/],
  ["the 0.x container network", variant((c) => (c.host.ipv4_network_part = "0.10.1")), "host.ipv4_network_part", /"this network"/],
  ["a link-local IPv6 prefix", variant((c) => (c.host.ipv6_prefix = "fe80:0:0:1")), "host.ipv6_prefix", /link-local range fe80::\/10/],
  ["a multicast IPv6 prefix", variant((c) => (c.host.ipv6_prefix = "ff02:0:0:1")), "host.ipv6_prefix", /multicast/],
  ["a public IPv4 that is Synapse's address", variant((c) => (c.host.public_ipv4 = "10.10.1.20")), "host.public_ipv4", /is an address of the container network/],
  ["0.0.0.0 as the public address", variant((c) => (c.host.public_ipv4 = "0.0.0.0")), "host.public_ipv4", /"this network" range 0\.0\.0\.0\/8, not a single host's address/],
  ["a multicast external address", variant((c) => (c.host.external_ipv4 = "224.0.0.1")), "host.external_ipv4", /multicast range/],
  ["the unspecified IPv6 address as the public one", variant((c) => (c.host.public_ipv6 = "::")), "host.public_ipv6", /unspecified or a multicast address/],
  ["a public IPv6 that is a container's address", variant((c) => (c.host.public_ipv6 = "fd10:10:10:1::1:20")), "host.public_ipv6", /container network/],
  ["a Consul port above 65535", variant((c) => (c.host.consul = { address: "10.10.1.1:70000" })), "host.consul.address", /port that is an integer from 1 to 65535/],
  ["a Consul port 0", variant((c) => (c.host.consul = { address: "[fd10:10:10:1::1]:0" })), "host.consul.address", /from 1 to 65535/],
  ["the coturn TLS port on the HTTPS port", variant((c) => (c.modules.coturn.tls_listening_port = 443)), "modules.coturn.tls_listening_port", /tcp 443 .* taken by the ingress proxy's HTTPS port/],
  ["the coturn port on the HTTP port", variant((c) => (c.modules.coturn.listening_port = 80)), "modules.coturn.listening_port", /tcp 80 .* ingress proxy's HTTP port/],
  // Header and line injection
  ["a From header with a CR/LF injection", variant((c) => (c.project.smtp = { host: "smtp.example.com", port: 587, from: "Example <noreply@example.com>\r\nBcc: victim@example.org" })), "project.smtp.from", /on one line/],
  ["a From header without an address", variant((c) => (c.project.smtp = { host: "smtp.example.com", port: 587, from: "Example homeserver" })), "project.smtp.from", /e-mail address/],
  ["an SMTP username with a line break", variant((c) => (c.project.smtp = { host: "smtp.example.com", port: 587, username: "me\nRCPT TO:<x@y.z>" })), "project.smtp.username", /one line of text/],
  ["a footer link text with a line break", variant((c) => (c.project.element_footer_links[0].text = "About\nus")), "project.element_footer_links[0].text", /one line/],
  ["an LXD profile with a line break", variant((c) => (c.host.lxd.profiles = ["default\nx"])), "host.lxd.profiles[0]", /one line/],
  ["an image with a NUL", variant((c) => (c.modules.postgres = { image: "pg\u0000" })), "modules.postgres.image", /control characters/],
];

/** A "billion laughs" document: ten levels of ten aliases each. */
function aliasBomb(): string {
  const lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]'];
  for (let i = 1; i < 10; i++) lines.push(`a${i}: &a${i} [${Array(10).fill(`*a${i - 1}`).join(", ")}]`);
  return `${lines.join("\n")}\n`;
}

describe("bad configurations get a clear error naming the YAML field", () => {
  const outOf = (name: string) => path.join(dir, `out-${slug(name)}`);
  const previousOf = (name: string) => path.join(outOf(name), "stacks", "ryo-matrix", "cdk.tf.json");
  let results: Map<string, Run>;
  beforeAll(async () => {
    for (const [name] of invalid) {
      fs.mkdirSync(path.dirname(previousOf(name)), { recursive: true });
      fs.writeFileSync(previousOf(name), '{"previous": true}');
    }
    results = await runAll(invalid, outOf);
  }, 300_000);

  test("covers at least 40 invalid configurations", () => {
    expect(invalid.length).toBeGreaterThanOrEqual(40);
  });

  test.each(invalid)("%s", (name, _content, field, message) => {
    const result = results.get(name)!;
    expect(result.status).toBe(1);
    expect(result.stdout).toBe("");
    const line = result.stderr.split("\n").find((l) => l.startsWith(`  - ${field}: `));
    if (line === undefined) throw new Error(`no problem reported at ${field}:\n${result.stderr}`);
    expect(line.slice(`  - ${field}: `.length)).toMatch(message);
    // No stack trace, no internal names, no raw validator wording or regular expressions.
    expect(result.stderr).not.toMatch(/^\s+at /m);
    expect(result.stderr).not.toMatch(/\.(ts|js):\d+|node_modules|Error:|must NOT|or more\b|\^\[|\{1,|parseAllDocuments|please use/);
    expect(result.stderr.length).toBeLessThan(2000);
    expect(result.ms).toBeLessThan(5000);
    // cdktf.out exactly as it was.
    expect(fs.readdirSync(outOf(name))).toEqual(["stacks"]);
    expect(fs.readdirSync(path.join(outOf(name), "stacks"))).toEqual(["ryo-matrix"]);
    expect(fs.readFileSync(previousOf(name), "utf8")).toBe('{"previous": true}');
  });

  test("a missing cdktf.out is not created for a bad configuration", async () => {
    const out = path.join(dir, "never-created");
    const result = await synth(variant((c) => (c.host.id = "matrixhostnumber17")), "no-outdir", out);
    expect(result.status).toBe(1);
    expect(fs.existsSync(out)).toBe(false);
  });

  test("a refusal only a construct makes is still reported as a problem, without a stack trace", () => {
    // Simulates a rule the configuration checks miss: they skip the host rules, Host still applies them.
    const preload = path.join(dir, "skip-host-rules.js");
    fs.writeFileSync(preload, `require(${JSON.stringify(path.join(ROOT, "dist", "lib", "host.js"))}).validateHostProps = () => {};\n`);
    const file = path.join(dir, "construct-only.yaml");
    fs.writeFileSync(file, variant((c) => (c.host.id = "matrixhostnumber17")));
    const out = path.join(dir, "construct-only-out");
    const result = spawnSync(process.execPath, ["-r", preload, MAIN, file], {
      cwd: ROOT,
      encoding: "utf8",
      env: { PATH: process.env.PATH, HOME: process.env.HOME, CDKTF_OUTDIR: out },
    });
    expect(result.status).toBe(1);
    expect(result.stderr).toMatch(/passed the configuration checks but a construct refused it \(please report this\)/);
    expect(result.stderr).toMatch(/^  - host\.hostId: .*15 characters/m);
    expect(result.stderr).not.toMatch(/^\s+at /m);
    expect(fs.existsSync(out)).toBe(false);
  });

  test("every pattern and format in the schema states its rule in words", () => {
    const missing: string[] = [];
    const walk = (node: any, at: string) => {
      if (!node || typeof node !== "object") return;
      if ((node.pattern || node.format) && !node.rule) missing.push(at);
      for (const [key, child] of Object.entries(node)) walk(child, `${at}/${key}`);
    };
    walk(schema, "#");
    expect(missing).toEqual([]);
  });
});

// [description, file content, stack id]
const valid: [string, string | Buffer, string][] = [
  ["IPv4 only", variant((c) => { delete c.host.ipv6_prefix; delete c.host.ipv6_subnet; }), "ryo-matrix"],
  [
    "custom ranges, ports and addresses",
    variant((c) => {
      Object.assign(c.host, { ipv4_network_part: "172.16.5", ipv6_prefix: "fd00:1:2:3", ipv6_subnet: "a", public_ipv4: "172.16.5.1" });
      Object.assign(c.modules.coturn, { listening_port: 3479, tls_listening_port: 5350, min_port: 40000, max_port: 40999 });
      c.project.host_parts = { synapse: 30, element: 31, synapse_admin: 32 };
    }),
    "ryo-matrix",
  ],
  ["a second project registering with shared modules", variant((c) => { c.modules = { deploy: false }; c.project.id = "second"; c.project.domain = "example.org"; c.project.turn_domain = "turn.example.com"; c.project.host_parts = { synapse: 40, element: 41, synapse_admin: 42 }; }), "second"],
  [
    "file:// release URLs",
    variant((c) => {
      c.project.element = { version: "1.11.90", sha256: "a".repeat(64), url: "file:///srv/releases/element-v1.11.90.tar.gz" };
      c.project.synapse_admin = { version: "0.10.3", sha256: "b".repeat(64), url: "file:///srv/releases/synapse-admin-0.10.3.tar.gz" };
    }),
    "ryo-matrix",
  ],
  ["JSON syntax", JSON.stringify(example(), null, 2), "ryo-matrix"],
  ["anchors and aliases", replaced("    email: admin@example.com\n", "    email: &admin admin@example.com\n  smtp:\n    host: smtp.example.com\n    port: 587\n    from: *admin\n"), "ryo-matrix"],
  ["CRLF line ends and a byte order mark", `\uFEFF${EXAMPLE_TEXT.replace(/\n/g, "\r\n")}`, "ryo-matrix"],
  ["a 15-character host id, and a long one with a network name", variant((c) => { c.host.id = "matrixhostnum15"; }), "ryo-matrix"],
  ["a long host id with network_name", variant((c) => { c.host.id = "averylongmatrixhostname"; c.host.network_name = "mxbr0"; }), "ryo-matrix"],
  ["a From header with a display name", variant((c) => (c.project.smtp = { host: "smtp.example.com", port: 465, ssl: true, starttls: false, username: "me@example.com", from: "Example homeserver <noreply@example.com>" })), "ryo-matrix"],
];

describe("unusual but valid configurations synthesize", () => {
  const outOf = (name: string) => path.join(dir, `valid-${slug(name)}`);
  let results: Map<string, Run>;
  beforeAll(async () => {
    results = await runAll(valid, outOf);
  }, 300_000);

  test.each(valid)("%s", (name, _content, stackId) => {
    const out = outOf(name);
    const result = results.get(name)!;
    expect(result.stderr).toBe("");
    expect(result.status).toBe(0);
    const stack = fs.readFileSync(path.join(out, "stacks", stackId, "cdk.tf.json"), "utf8");
    expect(JSON.parse(stack).resource).toBeDefined();
    if (name.startsWith("file://")) expect(stack).toContain("file:///srv/releases/element-v1.11.90.tar.gz");
  });
});
