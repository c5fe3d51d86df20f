/**
 * The two LXD provider dialects (constructs/core/lxd-dialect.ts): the same props give the same
 * container on provider 1.x and 3.x, each written the way its provider needs.
 */
import { Testing, TerraformStack } from "cdktf";
import { Host, HostProps, LxdProviderMajor } from "../lib/host";
import { parseConfig } from "../lib/config";
import { HostProviders } from "../constructs/core/host-providers";
import { ServiceContainer, ServiceContainerProps } from "../constructs/core/service-container";
import { IngressProxy } from "../constructs/modules/ingress-proxy";
import { IngressTcpListener } from "../constructs/modules/ingress-tcp-listener";
import { DUAL_STACK_HOST, EXAMPLE_CONFIG, hostStack, synthJson } from "./support/fixtures";
import * as fs from "fs";

const onProvider = (major: LxdProviderMajor, props: HostProps = DUAL_STACK_HOST): HostProps => ({ ...props, lxd: { ...props.lxd, provider: major } });
const CONTAINER_TYPE = { 3: "lxd_instance", 1: "lxd_container" } as const;
const VOLUME_TYPE = { 3: "lxd_storage_volume", 1: "lxd_volume" } as const;

function deploy(major: LxdProviderMajor, props: Partial<ServiceContainerProps> = {}) {
  const { stack, host } = hostStack(onProvider(major));
  new ServiceContainer(stack, "svc", {
    host,
    name: "web",
    hostPart: 20,
    packages: ["nginx"],
    firewall: [{ protocol: "tcp", ports: [80], from: host.networkCidrs, comment: "http from the host network" }],
    volumes: [{ name: "data", path: "/var/lib/web" }],
    attachVolumes: [{ name: "certs", volume: "proxy-shared-certs", path: "/var/certs" }],
    publicPorts: [{ protocol: "tcp", port: 443 }, { protocol: "udp", port: [50000, 50010] }],
    limits: { memory: "1GiB", cpu: "2" },
    service: { name: "web", port: 80 },
    ...props,
  });
  const json = synthJson(stack);
  const [container] = Object.values<any>(json.resource[CONTAINER_TYPE[major]] ?? {});
  const volumes = Object.values<any>(json.resource[VOLUME_TYPE[major]] ?? {});
  const [revision] = Object.values<any>(json.resource.terraform_data);
  return { json, container, volumes, revision };
}

const byName = (devices: any[]) => Object.fromEntries(devices.map((d) => [d.name, d]));
/** Devices with the volume reference replaced by the resource type's neutral name. */
const neutral = (devices: any[]) =>
  byName(devices.map((d) => ({ ...d, properties: { ...d.properties, ...(d.properties.source ? { source: d.properties.source.replace(/^\$\{lxd_(storage_volume|volume)\./, "${volume.") } : {}) } })));

describe("the same ServiceContainer props on both LXD provider majors", () => {
  const v3 = deploy(3);
  const v1 = deploy(1);

  test("each major gets only its own resource types", () => {
    expect(Object.keys(v3.json.resource).filter((t) => t.startsWith("lxd_")).sort()).toEqual(["lxd_instance", "lxd_storage_volume"]);
    expect(Object.keys(v1.json.resource).filter((t) => t.startsWith("lxd_")).sort()).toEqual(["lxd_container", "lxd_volume"]);
    expect(v3.json.terraform.required_providers.lxd.version).toBe("3.0.2");
    expect(v1.json.terraform.required_providers.lxd.version).toBe("1.9.1");
  });

  test("static NIC, volumes, attached volumes and proxy devices are the same devices", () => {
    expect(neutral(v1.container.device)).toEqual(neutral(v3.container.device));
    expect(Object.keys(byName(v1.container.device)).sort()).toEqual(
      ["attached-certs", "data-data", "eth0", "proxy-tcp-443-v4", "proxy-tcp-443-v6", "proxy-udp-50000-50010-v4", "proxy-udp-50000-50010-v6"],
    );
  });

  test("the same user-data, under the key each provider reads back (1.x drops cloud-init.* keys on read)", () => {
    expect(v3.container.config["cloud-init.user-data"]).toMatch(/^#cloud-config\n/);
    expect(v1.container.config["user.user-data"]).toBe(v3.container.config["cloud-init.user-data"]);
    expect(Object.keys(v1.container.config).every((k) => /^(boot|environment|raw|linux|security|user)\./.test(k))).toBe(true);
  });

  test("limits: config keys on 3.x, the limits map on 1.x", () => {
    expect(v3.container.config).toMatchObject({ "limits.memory": "1GiB", "limits.cpu": "2" });
    expect(v1.container.limits).toEqual({ memory: "1GiB", cpu: "2" });
  });

  test("both wait for the network and are unprivileged", () => {
    expect(v3.container.wait_for).toEqual([{ type: "ipv4", nic: "eth0" }]);
    expect(v3.container.timeouts).toEqual({ create: "15m" });
    expect(v1.container.wait_for_network).toBe(true);
    for (const c of [v1.container, v3.container]) expect(c.config["security.privileged"]).toBe("false");
  });

  test("both are replaced when image or user-data change, and protect their volumes", () => {
    for (const { container, revision, volumes } of [v1, v3]) {
      expect(container.lifecycle.replace_triggered_by).toEqual([expect.stringMatching(/^terraform_data\./)]);
      expect(revision.triggers_replace).toMatchObject({ image: "images:debian/12/cloud", user_data: container.config["user.user-data"] ?? container.config["cloud-init.user-data"] });
      expect(volumes).toEqual([expect.objectContaining({ name: "web-data", pool: "default", lifecycle: { prevent_destroy: true } })]);
    }
    expect(deploy(1, { protectData: false }).volumes[0].lifecycle).toEqual({ prevent_destroy: false });
  });

  test("1.x resources carry no project (1.x cannot launch local images with one); 3.x resources do", () => {
    expect(v1.container.project).toBeUndefined();
    expect(v1.volumes[0].project).toBeUndefined();
    expect(v3.container.project).toBe("default");
    expect(v3.volumes[0].project).toBe("default");
  });
});

describe("a removed public port or volume never lingers", () => {
  const without = { publicPorts: [{ protocol: "tcp" as const, port: 443 }], volumes: [] };

  test("3.x: the device set is part of the replacement trigger, so dropping a device replaces the container", () => {
    const before = deploy(3);
    const after = deploy(3, without);
    expect(before.revision.triggers_replace.devices).toContain("proxy-udp-50000-50010-v4");
    expect(before.revision.triggers_replace.devices).toContain("data-data disk path=/var/lib/web pool=default source=web-data");
    expect(after.revision.triggers_replace.devices).not.toContain("proxy-udp-50000-50010");
    expect(after.revision.triggers_replace.devices).not.toContain("data-data");
    expect(after.revision.triggers_replace.user_data).toBe(before.revision.triggers_replace.user_data);
  });

  test("1.x: devices update in place (1.x deletes the old set's devices), so the trigger stays and the device leaves the block", () => {
    const before = deploy(1);
    const after = deploy(1, without);
    expect(after.revision.triggers_replace).toEqual(before.revision.triggers_replace);
    expect(Object.keys(byName(after.container.device))).not.toContain("proxy-udp-50000-50010-v4");
  });
});

describe("provider blocks", () => {
  const providerBlock = (props: HostProps) => {
    const { stack } = hostStack(props);
    return synthJson(stack).provider.lxd[0];
  };

  test("3.x: the host's remote as default, plus the images simplestreams remote", () => {
    expect(providerBlock(DUAL_STACK_HOST)).toEqual({
      default_remote: "testhost",
      remote: [
        { name: "testhost", address: "unix://" },
        { name: "images", address: "https://images.lxd.canonical.com", protocol: "simplestreams" },
      ],
    });
  });

  test("1.x: one default lxd_remote with the socket path, a 1 s refresh and no certificate prompts", () => {
    expect(providerBlock(onProvider(1))).toEqual({
      refresh_interval: "1s",
      generate_client_certificates: false,
      accept_remote_certificate: false,
      lxd_remote: [{ name: "testhost", default: true, scheme: "unix", address: "/var/lib/lxd/unix.socket" }],
    });
    const snap = providerBlock({ ...DUAL_STACK_HOST, lxd: { provider: 1, address: "unix:///var/snap/lxd/common/lxd/unix.socket" } });
    expect(snap.lxd_remote[0]).toMatchObject({ scheme: "unix", address: "/var/snap/lxd/common/lxd/unix.socket" });
    const https = providerBlock({ ...DUAL_STACK_HOST, lxd: { provider: 1, address: "https://lxd.example.com:8443" } });
    expect(https.lxd_remote[0]).toMatchObject({ name: "testhost", scheme: "https", address: "lxd.example.com", port: "8443" });
  });
});

describe("TCP listeners on provider 1.x (no lxd_instance_device)", () => {
  function proxyStack() {
    const { stack, host } = hostStack(onProvider(1));
    const proxy = new IngressProxy(stack, "ingress", { host });
    return { stack, host, proxy };
  }

  test("in the proxy's own stack, the proxy devices join the proxy container's device set", () => {
    const { stack, proxy } = proxyStack();
    new IngressTcpListener(stack, "federation", { ingress: proxy, port: 8448, service: "synapse" });
    const json = synthJson(stack);
    expect(json.resource.lxd_instance_device).toBeUndefined();
    const [container] = Object.values<any>(json.resource.lxd_container);
    expect(byName(container.device)["tcp-listener-8448-v4"]).toEqual({
      name: "tcp-listener-8448-v4",
      type: "proxy",
      properties: { listen: "tcp:203.0.113.10:8448", connect: "tcp:10.10.1.10:8448", nat: "true" },
    });
    expect(byName(container.device)["tcp-listener-8448-v6"].properties.listen).toBe("tcp:[2001:db8::10]:8448");
  });

  test("from another stack: refused, naming the provider major and what to do instead", () => {
    const { stack, host } = hostStack(onProvider(1));
    expect(() => new IngressTcpListener(stack, "irc", { ingress: IngressProxy.reference(host), port: 6697, service: "irc" })).toThrow(
      /LXD provider 1\.x \(host\.lxd\.provider: 1\) has no lxd_instance_device[\s\S]*Register it in the stack that deploys the ingress proxy, or use provider 3 \(host\.lxd\.provider: 3\)/,
    );
  });
});

describe("what provider 1.x cannot do is refused up front", () => {
  test("the host description names each field", () => {
    expect(
      () =>
        new Host({
          ...DUAL_STACK_HOST,
          lxd: { provider: 1, project: "matrix", clientCertificateFile: "/c.crt", imageServer: "https://mirror.example.com" },
        }),
    ).toThrow(/host\.lxd\.project: LXD provider 1\.x creates containers only in the "default" project[\s\S]*host\.lxd\.clientCertificateFile: [\s\S]*host\.lxd\.imageServer: .*lxc remote add images/);
    expect(() => new Host({ ...DUAL_STACK_HOST, lxd: { provider: 2 as LxdProviderMajor } })).toThrow(/host\.lxd\.provider: must be 3 .* or 1/);
    expect(() => new Host(onProvider(1, { ...DUAL_STACK_HOST, lxd: { project: "default" } }))).not.toThrow();
  });

  test("the configuration file reports them with its own field names, all at once", () => {
    const text = fs.readFileSync(EXAMPLE_CONFIG, "utf8").replace(/^  lxd:\n/m, "  lxd:\n    provider: 1\n    project: matrix\n    image_server: https://mirror.example.com\n");
    expect(() => parseConfig(text, "my.yaml", {})).toThrow(/host\.lxd\.project: LXD provider 1\.x[\s\S]*host\.lxd\.image_server: LXD provider 1\.x/);
    const bad = fs.readFileSync(EXAMPLE_CONFIG, "utf8").replace(/^  lxd:\n/m, "  lxd:\n    provider: 2\n");
    expect(() => parseConfig(bad, "my.yaml", {})).toThrow(/host\.lxd\.provider/);
  });
});

test("HostProviders writes the provider of the host's major, and nothing else knows it", () => {
  for (const major of [1, 3] as const) {
    const stack = new TerraformStack(Testing.app(), "s");
    new HostProviders(stack, "p", { host: new Host(onProvider(major)) });
    expect(synthJson(stack).terraform.required_providers.lxd).toEqual({ source: "registry.terraform.io/terraform-lxd/lxd", version: major === 3 ? "3.0.2" : "1.9.1" });
  }
});

describe("provider 1.x connects once before creating in parallel", () => {
  test("every LXD resource of a stack waits for the stack's first one; 3.x creates in parallel", () => {
    const build = (major: LxdProviderMajor) => {
      const { stack, host } = hostStack(onProvider(major));
      for (const [name, hostPart] of [["one", 20], ["two", 21], ["three", 22]] as const) {
        new ServiceContainer(stack, name, {
          host,
          name,
          hostPart,
          firewall: [],
          volumes: name === "one" ? [{ name: "data", path: "/srv" }] : [],
        });
      }
      return synthJson(stack);
    };
    const v1 = build(1);
    const lxd = Object.entries<any>({ ...v1.resource.lxd_volume, ...v1.resource.lxd_container });
    const independent = lxd.filter(([, r]) => !(r.depends_on ?? []).some((d: string) => /^lxd_(volume|container)\./.test(d)));
    // Exactly one starts alone (the first volume); the three containers wait for it.
    expect(independent.map(([, r]) => r.name)).toEqual(["one-data"]);
    expect(lxd.filter(([, r]) => (r.depends_on ?? []).includes(`lxd_volume.${independent[0][0]}`))).toHaveLength(3);
    const v3 = build(3);
    for (const r of Object.values<any>({ ...v3.resource.lxd_storage_volume, ...v3.resource.lxd_instance })) expect(r.depends_on).toBeUndefined();
  });
});
