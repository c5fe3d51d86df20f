import { ServiceContainer } from "../constructs/core/service-container";
import { firstInstance, hostStack, synthJson, IPV4_HOST } from "./support/fixtures";
import { parse } from "yaml";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { cloudInitRuncmdScript } from "./support/validators";
import { Password } from "@cdktf/provider-random/lib/password";
import { TerraformStack } from "cdktf";
import { secretsWaitCommand } from "../lib/render/secret-files";

const generated = (stack: TerraformStack, id: string) => new Password(stack, id, { length: 32, special: false }).result;

function deploy(props: Partial<ConstructorParameters<typeof ServiceContainer>[2]> = {}, hostProps?: typeof IPV4_HOST) {
  const { stack, host } = hostStack(hostProps);
  const container = new ServiceContainer(stack, "svc", {
    host,
    name: "mod-web",
    hostPart: 20,
    packages: ["nginx"],
    firewall: [{ protocol: "tcp", ports: [80], from: host.networkCidrs, comment: "http from the host network" }],
    volumes: [{ name: "data", path: "/var/lib/web" }],
    publicPorts: [{ protocol: "tcp", port: 443 }, { protocol: "udp", port: [50000, 50010] }],
    service: { name: "mod-web", port: 80, tags: ["webserver"] },
    ...props,
  });
  return { json: synthJson(stack), container, host };
}

const instanceOf = firstInstance;
const devices = (json: any) => Object.fromEntries(instanceOf(json).device.map((d: any) => [d.name, d]));

describe("ServiceContainer", () => {
  test("gets a static dual-stack address on the host network", () => {
    const { json } = deploy();
    expect(devices(json).eth0.properties).toEqual({
      network: "testhost",
      "ipv4.address": "10.10.1.20",
      "ipv6.address": "fd10:10:10:1::1:20",
    });
  });

  test("forwards public ports on IPv4 and IPv6 with NAT proxy devices", () => {
    const { json } = deploy();
    const d = devices(json);
    expect(d["proxy-tcp-443-v4"].properties).toEqual({ listen: "tcp:203.0.113.10:443", connect: "tcp:10.10.1.20:443", nat: "true" });
    expect(d["proxy-udp-50000-50010-v6"].properties).toEqual({
      listen: "udp:[2001:db8::10]:50000-50010",
      connect: "udp:[fd10:10:10:1::1:20]:50000-50010",
      nat: "true",
    });
  });

  test("IPv4-only hosts get no IPv6 address and no IPv6 proxies", () => {
    const { json } = deploy({}, IPV4_HOST);
    const d = devices(json);
    expect(d.eth0.properties["ipv6.address"]).toBeUndefined();
    expect(Object.keys(d).filter((n) => n.endsWith("-v6"))).toEqual([]);
  });

  test("keeps data on a protected storage volume mounted into the container", () => {
    const { json } = deploy();
    const volume = json.resource.lxd_storage_volume;
    expect(Object.values(volume)).toEqual([expect.objectContaining({ name: "mod-web-data", pool: "default", lifecycle: { prevent_destroy: true } })]);
    expect(devices(json)["data-data"]).toEqual({ name: "data-data", type: "disk", properties: { pool: "default", source: expect.stringMatching(/^\$\{lxd_storage_volume\.svc_volume-data_\w+\.name\}$/), path: "/var/lib/web" } });
  });

  test("stock images install packages; overridden images do not", () => {
    const stock = parse(deploy().container.userData);
    // nftables always comes along: the stock image lacks it, and the firewall depends on it.
    expect(stock.packages).toEqual(["nftables", "nginx"]);
    const prebuilt = deploy({ image: "local:web" });
    expect(parse(prebuilt.container.userData).packages).toBeUndefined();
    expect(instanceOf(prebuilt.json).image).toBe("local:web");
  });

  test("writes a default-drop firewall that opens only the listed port to the host network", () => {
    const doc = parse(deploy().container.userData);
    const nft = doc.write_files.find((f: any) => f.path === "/etc/nftables.conf").content;
    expect(nft).toContain("policy drop;");
    expect(nft).toContain('ip saddr { 10.10.1.0/24 } tcp dport { 80 } accept comment "http from the host network"');
    expect(nft).toContain("ip6 saddr { fd10:10:10:1::1:0/112 } tcp dport { 80 } accept");
    // The firewall is the first thing up, and a container without nft stops there.
    expect(doc.runcmd[0]).toBe("set -e");
    expect(doc.runcmd[1]).toBe("chmod -R go= /var/lib/cloud/seed 2>/dev/null || true");
    expect(doc.runcmd[2]).toMatch(/^command -v nft .*exit 1/);
    expect(doc.runcmd[3]).toBe("nft -f /etc/nftables.conf");
  });

  test("a firewall that fails to load stops the setup: nothing is enabled or started, and the script fails", () => {
    // cloud-init's own runcmd script, run by sh with stand-ins for nft (failing), chmod and systemctl.
    const root = fs.mkdtempSync(path.join(os.tmpdir(), "matrix-lxd-svc-runcmd-"));
    try {
      const bin = path.join(root, "bin");
      fs.mkdirSync(bin);
      fs.writeFileSync(path.join(bin, "nft"), "#!/bin/sh\necho 'nft: syntax error' >&2\nexit 1\n", { mode: 0o755 });
      for (const tool of ["chmod", "systemctl"]) fs.writeFileSync(path.join(bin, tool), `#!/bin/sh\necho "${tool} $*" >> ${root}/calls.log\n`, { mode: 0o755 });
      const script = path.join(root, "runcmd");
      fs.writeFileSync(script, cloudInitRuncmdScript(deploy({ commands: ["systemctl enable --now mod-web"] }).container.userData), { mode: 0o700 });
      const r = spawnSync(script, [], { encoding: "utf8", env: { ...process.env, PATH: `${bin}:${process.env.PATH}` } });
      expect(r.stderr).toContain("nft: syntax error");
      expect(r.status).not.toBe(0);
      expect(fs.readFileSync(path.join(root, "calls.log"), "utf8")).toBe("chmod -R go= /var/lib/cloud/seed\n");
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
  });

  test("registers the service in the Consul catalog at its static address", () => {
    const { json } = deploy();
    expect(Object.values(json.resource.consul_service)).toEqual([
      expect.objectContaining({ name: "mod-web", address: "10.10.1.20", port: 80, tags: ["webserver"] }),
    ]);
  });

  test("mounts an existing volume read-only by default, without creating or owning it", () => {
    const { json } = deploy({
      attachVolumes: [
        { name: "certs", volume: "proxy-shared-certs", path: "/var/certs" },
        { name: "scratch", volume: "other-scratch", path: "/srv/scratch", readonly: false, pool: "fast" },
      ],
    });
    const d = devices(json);
    expect(d["attached-certs"]).toEqual({
      name: "attached-certs",
      type: "disk",
      properties: { pool: "default", source: "proxy-shared-certs", path: "/var/certs", readonly: "true" },
    });
    expect(d["attached-scratch"].properties).toEqual({ pool: "fast", source: "other-scratch", path: "/srv/scratch", readonly: "false" });
    expect(Object.values(json.resource.lxd_storage_volume).map((v: any) => v.name)).toEqual(["mod-web-data"]);
  });

  test("refuses attached volumes with duplicate names or relative paths, naming the props", () => {
    expect(() =>
      deploy({
        attachVolumes: [
          { name: "certs", volume: "a", path: "/var/certs" },
          { name: "certs", volume: "b", path: "var/other" },
        ],
      }),
    ).toThrow(/attachVolumes\[1\]\.name: "certs" is used twice[\s\S]*attachVolumes\[1\]\.path: must be an absolute path/);
  });

  test("refuses a second container on the same address, naming both", () => {
    const { stack, host } = hostStack();
    const base = { host, hostPart: 30, firewall: [] };
    new ServiceContainer(stack, "a", { ...base, name: "first" });
    expect(() => new ServiceContainer(stack, "b", { ...base, name: "second", hostPartProp: "second.hostPart" })).toThrow(
      /second\.hostPart: 10\.10\.1\.30 is already used by first/,
    );
  });

  test("refuses a second proxy device on a public protocol and port, naming both (LXD would only fail at deploy)", () => {
    const { stack, host } = hostStack();
    const base = { host, firewall: [] };
    new ServiceContainer(stack, "proxy", { ...base, name: "proxy", hostPart: 30, publicPorts: [{ protocol: "tcp", port: 443 }] });
    new ServiceContainer(stack, "udp", { ...base, name: "udp", hostPart: 31, publicPorts: [{ protocol: "udp", port: 443 }] });
    expect(
      () => new ServiceContainer(stack, "turn", { ...base, name: "turn", hostPart: 32, publicPorts: [{ protocol: "udp", port: 3478 }, { protocol: "tcp", port: [440, 450] }] }),
    ).toThrow(/publicPorts\[1\]: tcp 440-450 on the public address is already taken by test\/proxy \(tcp 443\)/);
  });

  test("refuses addresses outside the usable static range", () => {
    const { stack, host } = hostStack();
    for (const hostPart of [0, 1, 100, 254, 255, 12.5]) {
      expect(() => new ServiceContainer(stack, `c${hostPart}`, { host, name: `c${hostPart}`, hostPart, firewall: [] })).toThrow(
        /must be an integer from 2 to 254 outside the DHCP range 100-254/,
      );
    }
  });
  test("escapes Terraform template syntax in user-data but keeps references to other resources", () => {
    const { stack, host } = hostStack();
    const secret = new Password(stack, "secret", { length: 16 });
    new ServiceContainer(stack, "svc", {
      host,
      name: "esc",
      hostPart: 40,
      firewall: [],
      files: [{ path: "/usr/local/bin/hook.sh", content: `lineage="\${RENEWED_LINEAGE}"\nprintf '%{x}'\nsecret=${secret.result}\n` }],
    });
    const userData = instanceOf(synthJson(stack)).config["cloud-init.user-data"];
    expect(userData).toContain('lineage="$${RENEWED_LINEAGE}"');
    expect(userData).toContain("printf '%%{x}'");
    expect(userData).toMatch(/secret=\$\{random_password\.secret\.result\}/);
  });

  test("turns devlxd off on pre-built images and leaves it on for the stock image's LXD datasource", () => {
    expect(instanceOf(deploy().json).config["security.devlxd"]).toBe("true");
    expect(instanceOf(deploy({ image: "local:web" }).json).config["security.devlxd"]).toBe("false");
  });

  test("pushes secrets as root-owned files, waits for them before the commands, and keeps them out of the user-data", () => {
    const { stack, host } = hostStack();
    const container = new ServiceContainer(stack, "svc", {
      host,
      name: "mod-web",
      hostPart: 20,
      firewall: [],
      secrets: [
        { name: "token", path: "/etc/web/token", content: generated(stack, "token") },
        { name: "config", path: "/etc/web/secret.conf", content: `key = "${generated(stack, "key")}"\n$\{literal}\n`, mode: "0640" },
      ],
      commands: ["systemctl start web"],
    });
    const json = synthJson(stack);
    const files = (Object.values(json.resource.lxd_instance_file) as any[]).sort((a, b) => (a.target_path === "/etc/web/token" ? -1 : 1) - (b.target_path === "/etc/web/token" ? -1 : 1));
    expect(files.map((f) => ({ target: f.target_path, mode: f.mode, uid: f.uid, gid: f.gid, instance: f.instance }))).toEqual([
      { target: "/etc/web/token", mode: "0600", uid: 0, gid: 0, instance: "mod-web" },
      { target: "/etc/web/secret.conf", mode: "0640", uid: 0, gid: 0, instance: "mod-web" },
    ]);
    expect(files[0].content).toMatch(/^\$\{random_password\.token\.result\}$/);
    // Literal text is escaped for Terraform like the user-data; references stay references.
    expect(files[1].content).toBe('key = "${random_password.key.result}"\n$${literal}\n');
    expect(container.userData).not.toContain("random_password");
    const runcmd: string[] = parse(container.userData).runcmd;
    expect(runcmd.indexOf(secretsWaitCommand(["/etc/web/token", "/etc/web/secret.conf"]))).toBe(runcmd.indexOf("systemctl start web") - 1);
    // A new secret replaces the container, through a digest: the revision holds no secret.
    const [address] = instanceOf(json).lifecycle.replace_triggered_by;
    const triggers = json.resource.terraform_data[address.split(".")[1]].triggers_replace;
    expect(triggers.secret_token).toMatch(/^\$\{sha256\(join\("\\n", \[random_password\.token\.result\]\)\)\}:[0-9a-f]{64}$/);
    expect(files.every((f) => f.lifecycle.replace_triggered_by[0] === address)).toBe(true);
  });

  test("refuses literal secrets, bad paths and modes that let others read, naming the props and never the value", () => {
    const { stack, host } = hostStack();
    const token = generated(stack, "b");
    const attempt = () =>
      new ServiceContainer(stack, "svc", {
        host,
        name: "mod-web",
        hostPart: 20,
        firewall: [],
        secrets: [
          { name: "a", path: "/etc/a", content: "literal-secret-value" },
          { name: "a", path: "relative", content: token, mode: "0644" },
        ],
      });
    // One attempt: each adds a construct.
    let message = "";
    try {
      attempt();
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toMatch(/secrets\[0\]\.content: must hold a Terraform token/);
    expect(message).toMatch(/secrets\[1\]\.name: "a" is used twice/);
    expect(message).toMatch(/secrets\[1\]\.path: must be an absolute file path/);
    expect(message).toMatch(/secrets\[1\]\.mode: must give others nothing/);
    expect(message).not.toContain("literal-secret-value");
  });

  test("the first boot waits for secrets that arrive late, and stops with a message naming the ones that never do", () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), "matrix-lxd-svc-secrets-"));
    try {
      const bin = path.join(root, "bin");
      fs.mkdirSync(bin);
      for (const tool of ["chmod", "systemctl", "nft"]) fs.writeFileSync(path.join(bin, tool), `#!/bin/sh\necho "${tool} $*" >> ${root}/calls.log\n`, { mode: 0o755 });
      const { stack, host } = hostStack();
      const secretPath = path.join(root, "etc", "secret");
      const container = new ServiceContainer(stack, "svc", { host, name: "mod-web", hostPart: 20, firewall: [], secrets: [{ name: "s", path: secretPath, content: generated(stack, "s") }], commands: ["systemctl start web"] });
      const script = path.join(root, "runcmd");
      fs.writeFileSync(script, cloudInitRuncmdScript(container.userData), { mode: 0o700 });
      // Terraform pushes the file about three seconds after the container started.
      const late = spawnSync("sh", ["-c", `(sleep 3; mkdir -p ${path.dirname(secretPath)}; echo value > ${secretPath}) & ${script}`], {
        encoding: "utf8",
        env: { ...process.env, PATH: `${bin}:${process.env.PATH}` },
        timeout: 30_000,
      });
      expect(late.stderr).toBe("");
      expect(late.status).toBe(0);
      expect(fs.readFileSync(path.join(root, "calls.log"), "utf8").trim().split("\n").pop()).toBe("systemctl start web");

      const never = spawnSync("sh", ["-ec", secretsWaitCommand([path.join(root, "missing-a"), secretPath, path.join(root, "missing-b")], 2)], { encoding: "utf8", timeout: 30_000 });
      expect(never.status).toBe(1);
      expect(never.stderr).toContain(`secret files not delivered after 2 s: ${root}/missing-a ${root}/missing-b (Terraform pushes them`);
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
  });

  test("replaces the container when its user-data or image changes; the volume stays", () => {
    const trigger = (json: any) => {
      const [address] = instanceOf(json).lifecycle.replace_triggered_by;
      const [type, name] = address.split(".");
      return json.resource[type][name].triggers_replace;
    };
    const before = deploy().json;
    const after = deploy({ packages: ["nginx", "curl"] }).json;
    expect(trigger(before).user_data).toBe(instanceOf(before).config["cloud-init.user-data"]);
    expect(trigger(after).user_data).not.toBe(trigger(before).user_data);
    expect(trigger(deploy({ image: "local:web-2" }).json).image).toBe("local:web-2");
    expect(after.resource.lxd_storage_volume).toEqual(before.resource.lxd_storage_volume);
  });
});
