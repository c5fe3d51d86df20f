/**
 * Every kind of stack the project builds, in both LXD dialects, conforms to the committed
 * provider schema of its dialect (schemas/, the real `terraform providers schema -json` dumps),
 * checked by scripts/check-provider-schemas.js. Test setup (support/setup.ts) runs the same check
 * on every stack any test synthesizes; this file names the stacks that must be covered and
 * proves that the check fails on broken ones.
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { spawnSync } from "child_process";
import { Testing, TerraformStack } from "cdktf";
import { checkStack } from "../scripts/check-provider-schemas";
import { Host, LxdProviderMajor } from "../lib/host";
import { parseConfig } from "../lib/config";
import { HostProviders } from "../constructs/core/host-providers";
import { ServiceContainer } from "../constructs/core/service-container";
import { SharedModules } from "../constructs/modules/shared-modules";
import { IngressProxy } from "../constructs/modules/ingress-proxy";
import { IngressTcpListener } from "../constructs/modules/ingress-tcp-listener";
import { IngressBackend } from "../constructs/modules/ingress-backend";
import { IngressRoute } from "../constructs/modules/ingress-route";
import { CertificateDomains } from "../constructs/modules/certificate-domains";
import { Postgres } from "../constructs/modules/postgres";
import { PostgresDatabase } from "../constructs/modules/postgres-database";
import { MatrixStandaloneStack } from "../constructs/matrix/matrix-standalone-stack";
import { DUAL_STACK_HOST, IPV4_HOST, exampleConfig } from "./support/fixtures";

const ROOT = path.join(__dirname, "..");
const MAJORS: readonly LxdProviderMajor[] = [3, 1];
const CONTAINER_TYPE = { 3: "lxd_instance", 1: "lxd_container" } as const;

/** Every stack shape the project builds, for one LXD provider major. */
function stacksFor(major: LxdProviderMajor): Record<string, any> {
  const synth = (stack: TerraformStack) => JSON.parse(Testing.synth(stack));
  const withMajor = (props: typeof DUAL_STACK_HOST) => ({ ...props, lxd: { provider: major } });
  const stacks: Record<string, any> = {};

  // The example configuration, and a second project on the same host against its modules.
  const app = Testing.app();
  const first = new MatrixStandaloneStack(app, "ryo-matrix", { config: exampleConfig(major) });
  stacks["example configuration"] = synth(first);
  const secondText = fs
    .readFileSync(path.join(ROOT, "config", "example.yaml"), "utf8")
    .replace(/^  lxd:\n/m, `  lxd:\n    provider: ${major}\n`)
    .replace("id: ryo-matrix", "id: second-matrix")
    .replace("domain: example.com", "domain: example.org")
    .replace("modules:\n  deploy: true", "modules:\n  deploy: false")
    .replace("project:\n", "project:\n  host_parts: { synapse: 30, element: 31, synapse_admin: 32 }\n");
  const second = new MatrixStandaloneStack(app, "second", { config: parseConfig(secondText, "second.yaml", {}), host: first.host, modules: first.modules });
  stacks["second project on the same host"] = synth(second);

  // The four shared modules with a TCP listener in their own stack, on both host kinds.
  for (const [label, hostProps] of [["dual-stack", DUAL_STACK_HOST], ["IPv4-only", IPV4_HOST]] as const) {
    const stack = new TerraformStack(Testing.app(), "modules");
    const host = new Host(withMajor(hostProps));
    new HostProviders(stack, "providers", { host });
    const modules = new SharedModules(stack, "modules", { host, coturn: { domain: "turn.example.com", adminEmail: "admin@example.com" } });
    new IngressTcpListener(stack, "federation", { ingress: modules.ingress, port: 8448, service: "synapse" });
    stacks[`shared modules, ${label}`] = synth(stack);
  }

  // The consumer's stack (scripts/consumer-test.sh): a service against modules of another stack.
  const consumer = new TerraformStack(Testing.app(), "wiki");
  const host = new Host(withMajor({ ...DUAL_STACK_HOST, hostId: "myhost" }));
  new HostProviders(consumer, "providers", { host });
  new PostgresDatabase(consumer, "db", { postgres: Postgres.reference(host), database: "wiki", owner: "wiki" });
  new ServiceContainer(consumer, "wiki-app", {
    host,
    name: "wiki",
    hostPart: 40,
    image: "local:wiki",
    firewall: [{ protocol: "tcp", ports: [80], from: host.networkCidrs, comment: "http" }],
    volumes: [{ name: "data", path: "/var/lib/wiki" }],
    attachVolumes: [{ name: "certs", volume: "ingress-proxy-shared-certs", path: "/var/certs" }],
    publicPorts: [{ protocol: "udp", port: [40000, 40010] }],
    limits: { memory: "512MiB" },
    service: { name: "wiki", port: 80 },
  });
  new CertificateDomains(consumer, "certs", { domains: ["wiki.example.com"], adminEmail: "admin@example.com" });
  new IngressBackend(consumer, "wiki-backend", { service: "wiki" });
  new IngressRoute(consumer, "route", { name: "wiki-host", host: "wiki.example.com", action: { backend: "wiki" } });
  if (major === 3) new IngressTcpListener(consumer, "irc", { ingress: IngressProxy.reference(host), port: 6697, service: "irc" });
  stacks["consumer's stack"] = synth(consumer);
  return stacks;
}

describe.each(MAJORS)("LXD provider %p.x: every stack conforms to its provider schemas", (major) => {
  const stacks = stacksFor(major);

  test.each(Object.keys(stacks))("%s", (name) => {
    const stack = stacks[name];
    expect(checkStack(stack, { label: name })).toEqual([]);
    // The stack really is in this dialect, so the check above used that provider's schema.
    expect(stack.terraform.required_providers.lxd.version).toBe(major === 3 ? "3.0.2" : "1.9.1");
    expect(Object.keys(stack.resource[CONTAINER_TYPE[major]] ?? {}).length + Object.keys(stack.resource.lxd_instance_device ?? {}).length).toBeGreaterThan(0);
  });
});

describe("the self-hoster's synth (node dist/main.js, as cdktf synth runs it)", () => {
  let dir: string;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "matrix-schemas-"));
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  test.each(MAJORS)("MATRIX_CONFIG with host.lxd.provider %p gives a stack that conforms", (major) => {
    const config = path.join(dir, `provider-${major}.yaml`);
    fs.writeFileSync(config, fs.readFileSync(path.join(ROOT, "config", "example.yaml"), "utf8").replace(/^  lxd:\n/m, `  lxd:\n    provider: ${major}\n`));
    const out = path.join(dir, `out-${major}`);
    const result = spawnSync(process.execPath, [path.join(ROOT, "dist", "main.js")], {
      cwd: ROOT,
      encoding: "utf8",
      env: { PATH: process.env.PATH, HOME: process.env.HOME, CDKTF_OUTDIR: out, MATRIX_CONFIG: config },
    });
    expect(result.stderr).toBe("");
    expect(result.status).toBe(0);
    const file = path.join(out, "stacks", "ryo-matrix", "cdk.tf.json");
    const cli = spawnSync(process.execPath, [path.join(ROOT, "scripts", "check-provider-schemas.js"), file], { encoding: "utf8" });
    expect(cli.stdout).toContain("conforms");
    expect(cli.status).toBe(0);
  });
});

describe("the check fails on broken stacks", () => {
  const example = (major: LxdProviderMajor) => Testing.synth(new MatrixStandaloneStack(Testing.app(), "ryo-matrix", { config: exampleConfig(major) }));
  const pristine = { 1: example(1), 3: example(3) };
  const first = (section: any) => Object.values<any>(section)[0];
  const breakages: [string, LxdProviderMajor, (stack: any) => void, RegExp][] = [
    ["a 3.x resource type in a 1.x stack", 1, (s) => (s.resource.lxd_instance = { x: { name: "x", image: "i" } }), /resource\.lxd_instance\.x: unknown resource type for terraform-lxd\/lxd 1\.9\.1/],
    ["an unknown data source", 3, (s) => (s.data = { lxd_container: { x: { name: "x" } } }), /data\.lxd_container\.x: unknown data source type/],
    ["a 3.x block on a 1.x container", 1, (s) => (first(s.resource.lxd_container).wait_for = [{ type: "ipv4" }]), /lxd_container\.\S+ \(terraform-lxd\/lxd 1\.9\.1\)\.wait_for: unknown attribute or block/],
    ["a missing required attribute", 1, (s) => delete first(s.resource.lxd_container).image, /\.image: required attribute is missing/],
    ["a computed-only attribute", 3, (s) => (first(s.resource.lxd_instance).ipv4_address = "10.10.1.9"), /\.ipv4_address: is computed by the provider and cannot be set/],
    ["a set block written as an object", 1, (s) => (first(s.resource.lxd_container).device = { name: "eth0", type: "nic", properties: {} }), /\.device: must be a set of blocks/],
    ["a nested attribute written as a list", 3, (s) => (first(s.resource.lxd_instance).timeouts = [{ create: "1m" }]), /\.timeouts: must be an object/],
    ["a wrong value type", 1, (s) => (s.provider.lxd[0].lxd_remote[0].default = "yes"), /lxd_remote\[0\]\.default: must be a bool/],
    ["an unknown provider argument", 1, (s) => (s.provider.lxd[0].default_remote = "x"), /provider\.lxd\[0\] \(terraform-lxd\/lxd 1\.9\.1\)\.default_remote: unknown attribute or block/],
    ["too many blocks", 3, (s) => (s.resource.consul_prepared_query = { q: { name: "q", service: "s", failover: [{}, {}] } }), /\.failover: at most 1 block\(s\), got 2/],
    ["a provider version without a committed schema", 3, (s) => (s.terraform.required_providers.lxd.version = "2.7.1"), /required_providers\.lxd: no committed schema for terraform-lxd\/lxd 2\.7\.1/],
  ];

  test.each(MAJORS)("the unbroken %p.x example stack has no problems", (major) => {
    expect(checkStack(JSON.parse(pristine[major]))).toEqual([]);
  });

  test.each(breakages)("finds %s", (_what, major, breakIt, expected) => {
    const stack = JSON.parse(pristine[major]);
    breakIt(stack);
    const problems = checkStack(stack);
    expect(problems.join("\n")).toMatch(expected);
  });

  test("the command line exits 1 and names the problem", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "matrix-broken-"));
    try {
      const stack = JSON.parse(pristine[1]);
      first(stack.resource.lxd_container).wait_for = [{ type: "ipv4" }];
      const file = path.join(dir, "cdk.tf.json");
      fs.writeFileSync(file, JSON.stringify(stack));
      const result = spawnSync(process.execPath, [path.join(ROOT, "scripts", "check-provider-schemas.js"), file], { encoding: "utf8" });
      expect(result.status).toBe(1);
      expect(result.stderr).toMatch(/wait_for: unknown attribute or block/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
