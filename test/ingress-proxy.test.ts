import { spawnSync } from "node:child_process";
import { parse } from "yaml";
import { IngressProxy, IngressProxyProps } from "../constructs/modules/ingress-proxy";
import { IngressTcpListener } from "../constructs/modules/ingress-tcp-listener";
import { IngressBackend } from "../constructs/modules/ingress-backend";
import { ServiceContainer } from "../constructs/core/service-container";
import { CERTBOT_ISSUE_SCRIPT, CERT_DEPLOY_HOOK, FALLBACK_CERT_SCRIPT } from "../lib/render/certbot";
import { firstInstance, hostStack, synthJson, IPV4_HOST } from "./support/fixtures";
import { SELF_SIGNED_PEM, checkCloudInit, checkHaproxy, checkNftables } from "./support/validators";
import { ConsulDevAgent } from "./support/consul-template-render";

function deploy(props: Partial<IngressProxyProps> = {}, hostProps?: typeof IPV4_HOST) {
  const { stack, host } = hostStack(hostProps);
  const proxy = new IngressProxy(stack, "ingress", { host, ...props });
  return { stack, host, proxy, json: () => synthJson(stack) };
}

const instanceOf = firstInstance;
const devices = (json: any) => Object.fromEntries(instanceOf(json).device.map((d: any) => [d.name, d]));
const userData = (proxy: IngressProxy) => parse(proxy.container.userData);
const file = (proxy: IngressProxy, path: string) => {
  const found = userData(proxy).write_files.find((f: any) => f.path === path);
  expect(found).toBeDefined();
  return found;
};

describe("IngressProxy", () => {
  test("runs in the ingress-proxy container at host part 10 on both address families", () => {
    const { json, proxy } = deploy();
    const synth = json();
    expect(instanceOf(synth).name).toBe("ingress-proxy");
    expect(devices(synth).eth0.properties).toEqual({ network: "testhost", "ipv4.address": "10.10.1.10", "ipv6.address": "fd10:10:10:1::1:10" });
    expect(proxy.address).toEqual({ hostPart: 10, ipv4: "10.10.1.10", ipv6: "fd10:10:10:1::1:10" });
    expect(proxy.containerName).toBe("ingress-proxy");
  });

  test("takes ports 80 and 443 on the host's public IPv4 and IPv6", () => {
    const d = devices(deploy().json());
    const proxies = Object.values(d).filter((x: any) => x.type === "proxy").map((x: any) => x.properties);
    expect(proxies).toEqual(
      expect.arrayContaining([
        { listen: "tcp:203.0.113.10:80", connect: "tcp:10.10.1.10:80", nat: "true" },
        { listen: "tcp:203.0.113.10:443", connect: "tcp:10.10.1.10:443", nat: "true" },
        { listen: "tcp:[2001:db8::10]:80", connect: "tcp:[fd10:10:10:1::1:10]:80", nat: "true" },
        { listen: "tcp:[2001:db8::10]:443", connect: "tcp:[fd10:10:10:1::1:10]:443", nat: "true" },
      ]),
    );
    expect(proxies).toHaveLength(4);
  });

  test("on an IPv4-only host: IPv4 proxies only, and HAProxy does not bind IPv6", () => {
    const { json, proxy } = deploy({}, IPV4_HOST);
    const proxies = Object.values(devices(json())).filter((x: any) => x.type === "proxy");
    expect(proxies.map((p: any) => p.properties.listen)).toEqual(["tcp:198.51.100.20:80", "tcp:198.51.100.20:443"]);
    expect(proxy.haproxyTemplate).not.toContain(":::");
    expect(proxy.haproxyTemplate).toContain("nameserver consul 10.20.1.1:8600");
  });

  test("keeps certificates on three protected volumes; coturn gets the shared one by name", () => {
    const { json, proxy } = deploy();
    const synth = json();
    const volumes = Object.values(synth.resource.lxd_storage_volume) as any[];
    expect(volumes.map((v) => [v.name, v.lifecycle]).sort()).toEqual([
      ["ingress-proxy-certs", { prevent_destroy: true }],
      ["ingress-proxy-shared-certs", { prevent_destroy: true }],
      ["ingress-proxy-tls", { prevent_destroy: true }],
    ]);
    const d = devices(synth);
    expect([d["data-certs"].properties.path, d["data-tls"].properties.path, d["data-shared-certs"].properties.path]).toEqual([
      "/etc/letsencrypt",
      "/etc/haproxy/ssl",
      "/var/certs",
    ]);
    expect(proxy.sharedCertsVolume).toMatch(/\$\{TfToken\[/);
  });

  test("the firewall opens 80/443 to everyone and nothing else (statistics stay on loopback); nft accepts it", () => {
    const { proxy } = deploy();
    const nft = file(proxy, "/etc/nftables.conf").content;
    checkNftables(nft);
    expect(nft).toContain('    tcp dport { 80, 443 } accept comment "HTTP and HTTPS from anywhere"');
    expect(nft.match(/dport/g)).toEqual(["dport", "dport"]); // DHCPv6 client and 80/443
    expect(nft).not.toContain("6080");
    expect(proxy.haproxyTemplate).toMatch(/^listen stats\n {2}bind 127\.0\.0\.1:6080\n {2}stats enable$/m);
    expect(nft).toContain("policy drop;");
    // consul-template re-renders the same ruleset plus the TCP listener ports.
    expect(proxy.nftablesTemplate).toContain("{{- range ls `service/haproxy/tcp-listeners` }}");
    const withoutRange = proxy.nftablesTemplate.replace(/\{\{- range [\s\S]*?\{\{- end \}\}\{\{- end \}\}/, "");
    expect(withoutRange).toBe(nft);
  });

  test("cloud-init is valid and starts things in order: fallback certificate, HAProxy, consul-template", () => {
    const { proxy } = deploy();
    checkCloudInit(proxy.container.userData);
    const doc = userData(proxy);
    expect(doc.packages).toEqual(expect.arrayContaining(["haproxy", "certbot", "openssl", "nftables"]));
    const cmds: string[] = doc.runcmd;
    const at = (needle: string) => {
      const i = cmds.findIndex((c) => c.includes(needle));
      expect(i).toBeGreaterThanOrEqual(0);
      return i;
    };
    expect(at("sha256sum -c")).toBeLessThan(at("enable --now consul-template"));
    expect(at(FALLBACK_CERT_SCRIPT)).toBeLessThan(at("systemctl enable haproxy"));
    expect(at("systemctl enable haproxy")).toBeLessThan(at("enable --now consul-template"));
    expect(at("certbot.timer")).toBeLessThan(at("enable --now consul-template"));
    expect(file(proxy, CERT_DEPLOY_HOOK).permissions).toBe("0755");
    expect(file(proxy, FALLBACK_CERT_SCRIPT).permissions).toBe("0755");
  });

  test("consul-template watches the host's Consul and reloads HAProxy, runs certbot and reloads the firewall", () => {
    const { proxy } = deploy();
    const hcl = file(proxy, "/etc/consul-template/config.hcl").content;
    expect(hcl).toContain('address = "10.10.1.1:8500"');
    const blocks = hcl.split("template {").slice(1);
    const block = (destination: string) => {
      const found = blocks.find((b: string) => b.includes(`destination = "${destination}"`));
      expect(found).toBeDefined();
      return found as string;
    };
    expect(block("/etc/haproxy/haproxy.cfg")).toContain('command     = "systemctl reload-or-restart haproxy.service"');
    expect(block(CERTBOT_ISSUE_SCRIPT)).toContain('command     = "systemctl start --no-block certbot-issue.service"');
    expect(block(CERTBOT_ISSUE_SCRIPT)).toContain("perms       = 0755");
    expect(block("/etc/nftables.conf")).toContain('command     = "nft -f /etc/nftables.conf"');
    expect(file(proxy, "/etc/consul-template/templates/haproxy.cfg.ctmpl").content).toBe(proxy.haproxyTemplate);
  });

  test("its templates, rendered by consul-template from an empty KV store, pass haproxy, nft and sh", () => {
    const { proxy } = deploy();
    const agent = ConsulDevAgent.start();
    try {
      const cfg = agent.render(proxy.haproxyTemplate, {});
      checkHaproxy(cfg, { "/etc/haproxy/ssl/fallback.pem": SELF_SIGNED_PEM }, { failOnWarnings: true });
      expect(cfg).toContain("  nameserver consul 10.10.1.1:8600");
      expect(cfg).toContain("  bind :::443 v6only ssl crt /etc/haproxy/ssl/");
      expect(agent.render(proxy.nftablesTemplate, {})).toBe(file(proxy, "/etc/nftables.conf").content);
      const issue = agent.render(proxy.certbotIssueTemplate, {});
      expect(spawnSync("sh", ["-n"], { input: issue }).status).toBe(0);
    } finally {
      agent.stop();
    }
  });

  test("a pre-built image installs and downloads nothing", () => {
    const { proxy, json } = deploy({ image: "local:ingress" });
    const doc = userData(proxy);
    expect(doc.packages).toBeUndefined();
    expect(doc.runcmd.join("\n")).not.toMatch(/curl|sha256sum/);
    expect(instanceOf(json()).image).toBe("local:ingress");
  });

  test("registers itself in the Consul catalog under its name", () => {
    const { json } = deploy({ name: "edge", hostPart: 11 });
    const synth = json();
    expect(Object.values(synth.resource.consul_service)).toEqual([expect.objectContaining({ name: "edge", address: "10.10.1.11", port: 443 })]);
  });

  test("rejects a bad name and ACME server, naming each prop", () => {
    const { stack, host } = hostStack();
    expect(() => new IngressProxy(stack, "bad", { host, name: "Ingress_Proxy", acmeServer: "http://insecure" })).toThrow(
      /name: must be lower-case letters[\s\S]*acmeServer: must be an https URL/,
    );
  });
});

describe("IngressProxy.reference", () => {
  test("describes a proxy of another stack without creating resources, and keeps its address taken", () => {
    const { stack, host } = hostStack();
    const ref = IngressProxy.reference(host);
    expect(ref).toEqual({
      host,
      containerName: "ingress-proxy",
      address: { hostPart: 10, ipv4: "10.10.1.10", ipv6: "fd10:10:10:1::1:10" },
      sharedCertsVolume: "ingress-proxy-shared-certs",
    });
    expect(synthJson(stack).resource).toBeUndefined();
    expect(() => new ServiceContainer(stack, "other", { host, name: "other", hostPart: 10, firewall: [] })).toThrow(/already used by ingress-proxy/);
  });

  test("matches what the deploying stack created", () => {
    const { proxy, host, json } = deploy({ name: "edge", hostPart: 12 });
    const ref = IngressProxy.reference(host, { name: "edge", hostPart: 12 });
    expect(ref.address).toEqual(proxy.address);
    expect(ref.sharedCertsVolume).toBe("edge-shared-certs");
    expect(Object.values<any>(json().resource.lxd_storage_volume).map((v) => v.name)).toContain(ref.sharedCertsVolume);
    expect(ref.containerName).toBe(proxy.containerName);
  });
});

describe("IngressTcpListener", () => {
  test("writes the KV entry and forwards the public port on IPv4 and IPv6 to the proxy", () => {
    const { stack, proxy } = deploy();
    new IngressTcpListener(stack, "federation", { ingress: proxy, port: 8448, service: "synapse" });
    const synth = synthJson(stack);
    const keys = Object.values(synth.resource.consul_keys) as any[];
    expect(keys).toEqual([expect.objectContaining({ key: [{ path: "service/haproxy/tcp-listeners/8448", value: "synapse", delete: true }] })]);
    const devs = Object.values(synth.resource.lxd_instance_device) as any[];
    expect(devs.map((d) => [d.instance_name, d.name, d.type, d.properties])).toEqual([
      ["ingress-proxy", "tcp-listener-8448-v4", "proxy", { listen: "tcp:203.0.113.10:8448", connect: "tcp:10.10.1.10:8448", nat: "true" }],
      ["ingress-proxy", "tcp-listener-8448-v6", "proxy", { listen: "tcp:[2001:db8::10]:8448", connect: "tcp:[fd10:10:10:1::1:10]:8448", nat: "true" }],
    ]);
    // Created after the container it attaches to, and again whenever that container is replaced;
    // one after the other, because LXD refuses concurrent device updates of one instance (412).
    const [v4, v6] = Object.entries<any>(synth.resource.lxd_instance_device);
    expect(v4[1].depends_on).toEqual([expect.stringMatching(/^lxd_instance\./)]);
    expect(v6[1].depends_on).toEqual([v4[1].depends_on[0], `lxd_instance_device.${v4[0]}`]);
    for (const d of devs) expect(d.lifecycle.replace_triggered_by).toEqual([v4[1].depends_on[0]]);
  });

  test("chains every device on one container, across listeners", () => {
    const { stack, host } = hostStack();
    const ingress = IngressProxy.reference(host);
    new IngressTcpListener(stack, "irc", { ingress, port: 6697, service: "irc" });
    new IngressTcpListener(stack, "xmpp", { ingress, port: 5222, service: "xmpp" });
    const devices = Object.entries<any>(synthJson(stack).resource.lxd_instance_device);
    expect(devices.map(([, d]) => d.name)).toEqual(["tcp-listener-6697-v4", "tcp-listener-6697-v6", "tcp-listener-5222-v4", "tcp-listener-5222-v6"]);
    expect(devices[0][1].depends_on).toBeUndefined();
    devices.slice(1).forEach(([, d], i) => expect(d.depends_on).toEqual([`lxd_instance_device.${devices[i][0]}`]));
  });

  test("against a referenced proxy on an IPv4-only host: one IPv4 device, no dependency", () => {
    const { stack, host } = hostStack(IPV4_HOST);
    new IngressTcpListener(stack, "irc", { ingress: IngressProxy.reference(host), port: 6697, service: "irc" });
    const devs = Object.values(synthJson(stack).resource.lxd_instance_device) as any[];
    expect(devs).toHaveLength(1);
    expect(devs[0]).toMatchObject({ instance_name: "ingress-proxy", name: "tcp-listener-6697-v4", properties: { listen: "tcp:198.51.100.20:6697" } });
    expect(devs[0].depends_on).toBeUndefined();
  });

  test.each([0, 70000, 443, 80, 8080, 1.5])("rejects port %p, naming the prop and the valid range", (port) => {
    const { stack, host } = hostStack();
    expect(() => new IngressTcpListener(stack, "l", { ingress: IngressProxy.reference(host), port, service: "synapse" })).toThrow(
      /port: must be an integer from 1 to 65535 other than the proxy's own ports 80, 443, 8080, 6080, got /,
    );
  });

  test("refuses a listener to a service that is an HTTP backend in the same app", () => {
    const { stack, host } = hostStack();
    new IngressBackend(stack, "backend", { service: "synapse", denyPaths: ["/_synapse/admin"] });
    const ingress = IngressProxy.reference(host);
    new IngressTcpListener(stack, "federation", { ingress, port: 8448, service: "synapse" });
    new IngressTcpListener(stack, "turn", { ingress, port: 5350, service: "turn" });
    const errors = stack.node.findAll().flatMap((c) => c.node.validate());
    expect(errors).toEqual([expect.stringMatching(/federation: service "synapse" is the HTTP backend .*backend; raw TCP to it would bypass/)]);
  });

  test("reports a bad port and a bad service together", () => {
    const { stack, host } = hostStack();
    expect(() => new IngressTcpListener(stack, "l", { ingress: IngressProxy.reference(host), port: 0, service: "Bad Service" })).toThrow(
      /port: [\s\S]*service: must be a Consul service name/,
    );
  });
});
