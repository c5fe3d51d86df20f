import * as fs from "fs";
import * as path from "path";
import { parse, stringify } from "yaml";
import { loadConfig, parseConfig } from "../lib/config";
import { ValidationError } from "../lib/problems";

const EXAMPLE = path.join(__dirname, "..", "config", "example.yaml");
const example = () => parse(fs.readFileSync(EXAMPLE, "utf8"));

/** The example with one change applied, as YAML text. */
function variant(change: (c: any) => void): string {
  const config = example();
  change(config);
  return stringify(config);
}

function problemsOf(text: string, env: NodeJS.ProcessEnv = {}): { path: string; message: string }[] {
  try {
    parseConfig(text, "test.yaml", env);
  } catch (err) {
    expect(err).toBeInstanceOf(ValidationError);
    return [...(err as ValidationError).problems];
  }
  throw new Error("the configuration was accepted");
}

describe("configuration file", () => {
  test("the example configuration is valid", () => {
    const config = loadConfig(EXAMPLE, {});
    expect(config.project.domain).toBe("example.com");
    expect(config.host.id).toBe("matrixhost");
  });

  // [description, change, field named in the error, words the message must contain]
  const invalid: [string, (c: any) => void, string, RegExp][] = [
    ["domain with upper case", (c) => (c.project.domain = "Example.com"), "project.domain", /lower-case DNS name/],
    ["domain with trailing dot", (c) => (c.project.domain = "example.com."), "project.domain", /no trailing dot/],
    ["domain with one label", (c) => (c.project.domain = "localhost"), "project.domain", /DNS name/],
    ["domain with a space", (c) => (c.project.domain = "exa mple.com"), "project.domain", /DNS name/],
    ["domain label starting with a dash", (c) => (c.project.domain = "-bad.example.com"), "project.domain", /DNS name/],
    ["turn domain missing", (c) => delete c.project.turn_domain, "project.turn_domain", /is required/],
    ["turn domain equal to the domain", (c) => (c.project.turn_domain = "example.com"), "project.turn_domain", /must differ/],
    ["turn domain upper case", (c) => (c.project.turn_domain = "TURN.example.com"), "project.turn_domain", /lower-case/],
    ["bad admin e-mail", (c) => (c.project.admin.email = "admin-at-example.com"), "project.admin.email", /e-mail/],
    ["admin e-mail missing", (c) => delete c.project.admin.email, "project.admin.email", /is required/],
    ["admin username with spaces", (c) => (c.project.admin.username = "the admin"), "project.admin.username", /localpart/],
    ["project id too long", (c) => (c.project.id = "matrix-project-number-1"), "project.id", /at most 15 characters/],
    ["project id with upper case", (c) => (c.project.id = "RyoMatrix"), "project.id", /lower-case/],
    ["project id ending in a dash", (c) => (c.project.id = "matrix-"), "project.id", /lower-case/],
    ["host id with symbols", (c) => (c.host.id = "my-host"), "host.id", /letters and digits only/],
    ["host id with a space", (c) => (c.host.id = "my host"), "host.id", /letters and digits only/],
    ["network part with four octets", (c) => (c.host.ipv4_network_part = "10.10.1.0"), "host.ipv4_network_part", /three octets/],
    ["network part out of range", (c) => (c.host.ipv4_network_part = "10.300.1"), "host.ipv4_network_part", /three octets/],
    ["public IPv4 not an address", (c) => (c.host.public_ipv4 = "example.com"), "host.public_ipv4", /IPv4 address/],
    ["IPv6 prefix with trailing ::", (c) => (c.host.ipv6_prefix = "fd10:10:10:1::"), "host.ipv6_prefix", /trailing ::/],
    ["public IPv6 without an IPv6 prefix", (c) => { delete c.host.ipv6_prefix; c.host.public_ipv6 = "2001:db8::1"; }, "host.public_ipv6", /needs host.ipv6_prefix/],
    ["coturn port 0", (c) => (c.modules.coturn.listening_port = 0), "modules.coturn.listening_port", /from 1 to 65535/],
    ["coturn port above 65535", (c) => (c.modules.coturn.tls_listening_port = 70000), "modules.coturn.tls_listening_port", /from 1 to 65535/],
    ["relay min equal to max", (c) => (c.modules.coturn.min_port = 51000), "modules.coturn.min_port", /less than modules.coturn.max_port/],
    ["relay min above max", (c) => { c.modules.coturn.min_port = 52000; c.modules.coturn.max_port = 51000; }, "modules.coturn.min_port", /less than/],
    ["listening port inside the relay range", (c) => (c.modules.coturn.listening_port = 50500), "modules.coturn.listening_port", /outside the relay range/],
    ["port given as a string", (c) => (c.modules.coturn.listening_port = "3478"), "modules.coturn.listening_port", /must be a whole number/],
    ["address inside the DHCP range", (c) => (c.project.host_parts = { synapse: 150 }), "project.host_parts.synapse", /DHCP range/],
    ["address outside the network", (c) => (c.project.host_parts = { element: 300 }), "project.host_parts.element", /from 2 to 254/],
    ["the gateway address", (c) => (c.modules.postgres = { host_part: 1 }), "modules.postgres.host_part", /from 2 to 254/],
    ["two components on one address", (c) => (c.project.host_parts = { synapse: 10 }), "project.host_parts.synapse", /already used by modules.ingress_proxy.host_part/],
    ["unknown top-level key", (c) => (c.extra = true), "extra", /not a known setting/],
    ["unknown project key (typo)", (c) => (c.project.domian = "example.org"), "project.domian", /valid keys here: .*domain/],
    ["password in the file", (c) => (c.project.admin.password = "Secret-Password-1"), "project.admin.password", /export TF_VAR_admin_password/],
    ["boolean given as a string", (c) => (c.project.allow_public_rooms_without_auth = "yes"), "project.allow_public_rooms_without_auth", /must be true or false/],
    ["country code lower case", (c) => (c.project.default_country_code = "gb"), "project.default_country_code", /ISO 3166-1/],
    ["footer link over http", (c) => (c.project.element_footer_links = [{ text: "x", url: "http://example.com" }]), "project.element_footer_links[0].url", /is not valid/],
    ["room complexity zero", (c) => (c.project.room_complexity = 0), "project.room_complexity", /above 0/],
    ["synapse version not semver", (c) => (c.project.synapse = { version: "latest" }), "project.synapse.version", /is not valid/],
    ["element version without sha256", (c) => (c.project.element = { version: "1.11.90" }), "project.element", /version and sha256 go together/],
    ["element sha256 malformed", (c) => (c.project.element = { version: "1.11.90", sha256: "abc" }), "project.element.sha256", /SHA-256 as 64 lower-case hex digits/],
    ["host section missing", (c) => delete c.host, "host", /is required/],
    ["project id missing", (c) => delete c.project.id, "project.id", /is required/],
    ["smtp without a port", (c) => (c.project.smtp = { host: "smtp.example.com" }), "project.smtp.port", /is required/],
    ["LXD address with another scheme", (c) => (c.host.lxd.address = "http://lxd:8443"), "host.lxd.address", /unix:\/\//],
  ];

  test.each(invalid)("rejects %s", (_name, change, field, message) => {
    const problems = problemsOf(variant(change));
    const match = problems.find((p) => p.path === field);
    expect(match).toBeDefined();
    expect(match!.message).toMatch(message);
  });

  test("covers at least 30 invalid configurations", () => {
    expect(invalid.length).toBeGreaterThanOrEqual(30);
  });

  test("reports every problem at once", () => {
    const problems = problemsOf(
      variant((c) => {
        c.project.domain = "Bad.";
        c.host.id = "bad-id";
        c.project.admin.email = "nope";
        c.unknown = 1;
      }),
    );
    expect(problems.map((p) => p.path).sort()).toEqual(["host.id", "project.admin.email", "project.domain", "unknown"]);
  });

  test("checks the admin password from the environment without keeping it", () => {
    const text = fs.readFileSync(EXAMPLE, "utf8");
    const problems = problemsOf(text, { TF_VAR_admin_password: "short1A" });
    expect(problems).toEqual([{ path: "TF_VAR_admin_password (environment)", message: "is too weak: it needs at least 12 characters" }]);
    expect(JSON.stringify(problems)).not.toContain("short1A");
    for (const weak of ["alllowercase123", "ALLUPPERCASE123", "NoDigitsAtAllHere"]) {
      expect(problemsOf(text, { TF_VAR_admin_password: weak })[0].message).toMatch(/too weak/);
    }
    expect(() => parseConfig(text, "test.yaml", { TF_VAR_admin_password: "Str0ng-Enough-Pass" })).not.toThrow();
  });

  test("invalid YAML and duplicate keys are reported with their line", () => {
    expect(problemsOf("host: [unclosed")[0].path).toMatch(/^line \d+/);
    expect(problemsOf("project: {}\nproject: {}")[0]).toEqual({ path: "project", message: expect.stringMatching(/given twice \(lines 1 and 2\)/) });
  });
});

describe("README configuration reference", () => {
  test("documents every field of the schema (regenerate with node scripts/config-docs.js)", () => {
    const result = require("child_process").spawnSync(process.execPath, [path.join(__dirname, "..", "scripts", "config-docs.js"), "--check"], { encoding: "utf8" });
    expect(result.stderr).toBe("");
    expect(result.status).toBe(0);
    const readme = fs.readFileSync(path.join(__dirname, "..", "README.md"), "utf8");
    for (const field of ["host.ipv4_network_part", "project.turn_domain", "modules.coturn.min_port", "project.element_footer_links[].url"]) {
      expect(readme).toContain(`\`${field}\``);
    }
  });
});

describe("precompiled configuration validator", () => {
  test("is up to date with the schema (regenerate: npm run build && node scripts/compile-config-schema.js && npm run build)", () => {
    const result = require("child_process").spawnSync(process.execPath, [path.join(__dirname, "..", "scripts", "compile-config-schema.js"), "--check"], { encoding: "utf8" });
    expect(result.stderr).toBe("");
    expect(result.status).toBe(0);
  });
});

describe("what the configuration checks accept, the constructs accept", () => {
  // Edge values the schema and the cross-field rules allow; the stack must build from each.
  const edges: [string, (c: any) => void][] = [
    ["a one-letter project id", (c) => (c.project.id = "m")],
    ["a 15-character project id", (c) => (c.project.id = "a23456789012345")],
    ["a 15-character host id", (c) => (c.host.id = "Matrixhost12345")],
    ["a long domain", (c) => { c.project.domain = `${"a".repeat(60)}.${"b".repeat(60)}.${"c".repeat(60)}.${"d".repeat(50)}.example`; c.project.turn_domain = "turn.example.com"; }],
    ["an IDN top-level domain", (c) => { c.project.domain = "example.xn--p1ai"; c.project.turn_domain = "turn.example.xn--p1ai"; }],
    ["an e-mail address with plus and upper case", (c) => (c.project.admin.email = "Admin+matrix@Example.COM")],
    ["an admin localpart with every allowed symbol", (c) => (c.project.admin.username = "a.b=c/d-e_f+g")],
    ["the widest relay range from the first unprivileged port", (c) => Object.assign(c.modules.coturn, { min_port: 1024, max_port: 17407, listening_port: 1, tls_listening_port: 65535 })],
    ["the lowest and highest static host parts", (c) => (c.project.host_parts = { synapse: 2, element: 98, synapse_admin: 99 })],
    ["an https LXD remote and a Consul address by name", (c) => { c.host.lxd = { address: "https://lxd.example.com:8443", remote_name: "far-away", client_certificate_file: "/etc/lxd/client.crt", client_key_file: "/etc/lxd/client.key", profiles: ["default", "releases"], image_server: "https://images.example.com/" }; c.host.consul = { address: "consul.example.com:8500", datacenter: "dc_1" }; }],
    ["an IPv6 Consul address", (c) => (c.host.consul = { address: "[fd10:10:10:1::1]:8500" })],
    ["a unix socket path", (c) => (c.host.lxd.address = "unix:///var/snap/lxd/common/lxd/unix.socket")],
    ["public IPv6, external IPv4 and the highest subnet hextet", (c) => Object.assign(c.host, { public_ipv6: "2001:db8::10", external_ipv4: "198.51.100.7", ipv6_subnet: "ffff" })],
    ["the host's gateway as the public address", (c) => (c.host.public_ipv4 = "10.10.1.1")],
    ["a fractional room complexity and another country", (c) => Object.assign(c.project, { room_complexity: 0.5, default_country_code: "DE" })],
    ["a footer link with query and fragment", (c) => (c.project.element_footer_links = [{ text: "Über uns", url: "https://example.com/a?b=c#d" }])],
    ["Synapse's own From format", (c) => (c.project.smtp = { host: "smtp.example.com", port: 25, username: "matrix@example.com", from: "%(app)s homeserver <noreply@example.com>" })],
    ["pinned releases from file:// and https", (c) => { c.project.element = { version: "1.12.0-rc.1", sha256: "a".repeat(64), url: "file:///srv/releases/element.tar.gz" }; c.project.synapse_admin = { version: "0.10.3-local.1", sha256: "b".repeat(64), url: "https://mirror.example.com/sa.tgz" }; c.project.synapse = { version: "1.200.0" }; }],
    ["pre-built images", (c) => { c.modules.postgres = { image: "local:postgres-17" }; c.project.synapse = { image: "matrix-synapse" }; c.project.element = { image: "images:debian/12" }; }],
  ];

  test.each(edges)("%s", (_name, change) => {
    const config = parseConfig(variant(change), "edge.yaml", {});
    const { App } = require("cdktf") as typeof import("cdktf");
    const { MatrixStandaloneStack } = require("../constructs/matrix/matrix-standalone-stack") as typeof import("../constructs/matrix/matrix-standalone-stack");
    const app = new App({ outdir: fs.mkdtempSync(path.join(require("os").tmpdir(), "edge-")) });
    new MatrixStandaloneStack(app, config.project.id, { config });
    expect(app.node.findAll().flatMap((c) => c.node.validate())).toEqual([]);
    fs.rmSync(app.outdir, { recursive: true, force: true });
  });
});
