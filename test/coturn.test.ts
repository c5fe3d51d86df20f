import { spawnSync } from "node:child_process";
import { parse } from "yaml";
import { Testing } from "cdktf";
import { Coturn, CoturnProps, turnUris } from "../constructs/modules/coturn";
import { TurnDomain } from "../constructs/modules/turn-domain";
import { CertificateDomains } from "../constructs/modules/certificate-domains";
import {
  COTURN_RENDERED_PATH,
  COTURN_SECRET_PATH,
  DENIED_PEER_NETWORKS,
  coturnPeerRanges,
  peerRange,
  renderStaticAuthSecret,
  renderTurnserverTemplate,
  TurnserverOptions,
} from "../lib/render/turnserver";
import { DUAL_STACK_HOST, firstInstance, hostStack, kvEntries, synthJson, IPV4_HOST } from "./support/fixtures";
import { checkCloudInit, checkNftables } from "./support/validators";
import { ConsulDevAgent } from "./support/consul-template-render";
import { CONSUL_TOKEN_PATH } from "../lib/render/consul-acl";
import { CONSUL_TEMPLATE_START } from "../lib/render/consul-template";

const SAMPLE_SECRET = "sample-secret-for-tests";
const CERTS = { sharedCertsVolume: "ingress-proxy-shared-certs" };

const templateOptions: TurnserverOptions = {
  ipv4: "10.10.1.15",
  ipv6: "fd10:10:10:1::1:15",
  externalIpv4: "203.0.113.10",
  externalIpv6: "2001:db8::10",
  defaults: { listeningPort: 3478, tlsListeningPort: 5349, minPort: 50000, maxPort: 51000 },
  deniedNetworks: ["10.10.1.0/24", "fd10:10:10:1::1:0/112"],
};

function deploy(props: Partial<CoturnProps> = {}, hostProps?: typeof IPV4_HOST) {
  const { stack, host } = hostStack(hostProps);
  const coturn = new Coturn(stack, "coturn", { host, certificates: CERTS, ...props });
  return { stack, host, coturn, json: () => synthJson(stack) };
}

const userDataOf = (coturn: Coturn) => parse(coturn.container.userData);
const fileAt = (doc: any, p: string): string => {
  const file = doc.write_files.find((f: any) => f.path === p);
  if (!file) throw new Error(`no ${p} in the user-data`);
  return file.content;
};
const instanceOf = firstInstance;

describe("peerRange", () => {
  test("turns CIDRs into coturn's first-last ranges, single addresses for /32 and /128", () => {
    expect(peerRange("10.0.0.0/8")).toBe("10.0.0.0-10.255.255.255");
    expect(peerRange("100.64.0.0/10")).toBe("100.64.0.0-100.127.255.255");
    expect(peerRange("::1/128")).toBe("::1");
    expect(peerRange("::ffff:0:0/96")).toBe("::ffff:0:0-::ffff:ffff:ffff");
    expect(peerRange("fc00::/7")).toBe("fc00::-fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
    expect(peerRange("2001::/23")).toBe("2001::-2001:1ff:ffff:ffff:ffff:ffff:ffff:ffff");
    expect(peerRange("fd10:10:10:1::1:0/112")).toBe("fd10:10:10:1::1:0-fd10:10:10:1::1:ffff");
    expect(() => peerRange("10.0.0.0/33")).toThrow(/not a CIDR/);
  });
});

describe("coturnPeerRanges", () => {
  test("keeps ranges that start above the unspecified address as they are", () => {
    expect(coturnPeerRanges("10.0.0.0/8")).toEqual(["10.0.0.0-10.255.255.255"]);
    expect(coturnPeerRanges("::ffff:0:0/96")).toEqual(["::ffff:0:0-::ffff:ffff:ffff"]);
    expect(coturnPeerRanges("::1/128")).toEqual(["::1"]);
  });

  test("leaves out the unspecified address, as byte-aligned ranges that cover the rest exactly", () => {
    expect(coturnPeerRanges("::/128")).toEqual([]);
    expect(coturnPeerRanges("::/96")).toEqual(["::1-::ff", "::100-::ffff", "::1:0-::ff:ffff", "::100:0-::ffff:ffff"]);
    expect(coturnPeerRanges("0.0.0.0/8")).toEqual(["0.0.0.1-0.0.0.255", "0.0.1.0-0.0.255.255", "0.1.0.0-0.255.255.255"]);
    expect(coturnPeerRanges("0.0.0.0/4")).toEqual(["0.0.0.1-0.0.0.255", "0.0.1.0-0.0.255.255", "0.1.0.0-0.255.255.255", "1.0.0.0-15.255.255.255"]);
  });
});

describe("renderTurnserverTemplate", () => {
  const template = renderTurnserverTemplate(templateOptions);

  test("authenticates with a shared secret it does not hold itself, relays UDP only, and keeps the CLI off", () => {
    expect(template).not.toMatch(/^static-auth-secret/m);
    for (const line of ["use-auth-secret", "no-tcp-relay", "no-multicast-peers", "no-cli", "fingerprint", "no-tlsv1", "no-tlsv1_1"]) {
      expect(template.split("\n")).toContain(line);
    }
    expect(template).not.toMatch(/^(verbose|Verbose|log-file=\/)/m);
  });

  test("listens and relays on the static addresses and advertises the public ones", () => {
    const lines = template.split("\n");
    expect(lines.filter((l) => /^(listening|relay|external)-ip=/.test(l))).toEqual([
      "listening-ip=10.10.1.15",
      "listening-ip=fd10:10:10:1::1:15",
      "relay-ip=10.10.1.15",
      "relay-ip=fd10:10:10:1::1:15",
      "external-ip=203.0.113.10/10.10.1.15",
      "external-ip=2001:db8::10/fd10:10:10:1::1:15",
    ]);
  });

  test("denies private and reserved IPv4 and IPv6 peers, and the host network", () => {
    const denied = template.split("\n").filter((l) => l.startsWith("denied-peer-ip=")).map((l) => l.slice("denied-peer-ip=".length));
    for (const range of [
      "10.0.0.0-10.255.255.255",
      "172.16.0.0-172.31.255.255",
      "192.168.0.0-192.168.255.255",
      "127.0.0.0-127.255.255.255",
      "169.254.0.0-169.254.255.255",
      "100.64.0.0-100.127.255.255",
      "::1",
      "::ffff:0:0-::ffff:ffff:ffff",
      "64:ff9b::-64:ff9b::ffff:ffff",
      "100::-100::ffff:ffff:ffff:ffff",
      "2001::-2001:1ff:ffff:ffff:ffff:ffff:ffff:ffff",
      "2001:db8::-2001:db8:ffff:ffff:ffff:ffff:ffff:ffff",
      "fc00::-fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
      "fe80::-febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
      "ff00::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
      "fd10:10:10:1::1:0-fd10:10:10:1::1:ffff",
    ]) {
      expect(denied).toContain(range);
    }
    // coturn reads a range starting at 0.0.0.0 or :: as open to every address of the other
    // family: those CIDRs come without their first address (which coturn refuses itself).
    expect(denied.filter((r) => /^(0\.0\.0\.0|::)(-|$)/.test(r))).toEqual([]);
    expect(denied).toEqual(expect.arrayContaining(["0.0.0.1-0.0.0.255", "0.0.1.0-0.0.255.255", "0.1.0.0-0.255.255.255", "::1-::ff", "::100-::ffff", "::1:0-::ff:ffff", "::100:0-::ffff:ffff"]));
    // The host's own external addresses, one by one (here inside denied ranges anyway).
    expect(denied).toEqual(expect.arrayContaining(["203.0.113.10", "2001:db8::10"]));
    // One line per range, plus the two host networks and the two external addresses; 0.0.0.0/8
    // and ::/96 become 3 and 4 lines, ::/128 none.
    expect(denied).toHaveLength(DENIED_PEER_NETWORKS.length + 2 + 2 + 2 + 3 - 1);
    // coturn allows the private part of each external-ip itself (relay to relay); nothing else.
    expect(template).not.toContain("allowed-peer-ip");
  });

  test("IPv4-only: no IPv6 listener, relay or external address", () => {
    const v4 = renderTurnserverTemplate({ ...templateOptions, ipv6: undefined, externalIpv6: undefined });
    expect(v4).not.toMatch(/^(listening|relay|external)-ip=.*:/m);
    expect(v4).toContain("external-ip=203.0.113.10/10.10.1.15\n");
  });

  test("denies the host's public addresses as peers, each exactly, once, also where they are public", () => {
    const options = { ...templateOptions, externalIpv4: "198.18.0.0", hostAddresses: ["5.6.7.8", "2a01:4f8:1:2::3", "5.6.7.8"] };
    const denied = renderTurnserverTemplate({ ...options, externalIpv4: "5.6.7.9" })
      .split("\n")
      .filter((l) => l.startsWith("denied-peer-ip="));
    expect(denied.filter((l) => /=(5\.6\.7\.|2a01:4f8:)/.test(l))).toEqual(["denied-peer-ip=5.6.7.9", "denied-peer-ip=5.6.7.8", "denied-peer-ip=2a01:4f8:1:2::3"]);
  });

  test("the secret line: one line, or refused", () => {
    expect(renderStaticAuthSecret(SAMPLE_SECRET)).toBe(`static-auth-secret=${SAMPLE_SECRET}\n`);
    expect(() => renderStaticAuthSecret("a\nno-auth")).toThrow(/single line/);
  });

  describe("rendered by the real consul-template", () => {
    let agent: ConsulDevAgent;
    beforeAll(() => {
      agent = ConsulDevAgent.start();
    }, 60_000);
    afterAll(() => agent?.stop());

    test("with a TURN domain: its realm, and the TLS links coturn-prepare points at its certificate; ports from KV", () => {
      const conf = agent.render(template, {
        "service/coturn/coturn-domain": "turn.example.com",
        "service/coturn/listening-port": "3479",
        "service/coturn/tls-listening-port": "5350",
        "service/coturn/min-port": "52000",
        "service/coturn/max-port": "53000",
      });
      const lines = conf.split("\n");
      expect(lines).toEqual(expect.arrayContaining([
        "realm=turn.example.com",
        // coturn-prepare points these at the domain's full chain and key once they exist.
        "cert=/run/coturn-tls/fullchain.pem",
        "pkey=/run/coturn-tls/key.pem",
        "listening-port=3479",
        "tls-listening-port=5350",
        "min-port=52000",
        "max-port=53000",
      ]));
      expect(conf).not.toContain("{{");
      expect(conf).not.toMatch(/^(cert|pkey)=.*fallback/m);
    });

    test("without a domain (or a value that is not one): no realm, the same TLS links, the module's ports", () => {
      const cases: Record<string, string>[] = [{}, { "service/coturn/coturn-domain": "../../etc/shadow", "service/coturn/listening-port": "3478\nno-auth" }];
      for (const kv of cases) {
        const conf = agent.render(template, kv);
        expect(conf).toContain("cert=/run/coturn-tls/fullchain.pem\npkey=/run/coturn-tls/key.pem\n");
        expect(conf).not.toMatch(/^realm=/m);
        expect(conf).not.toContain("shadow");
        expect(conf).not.toContain("no-auth");
        expect(conf).toContain("listening-port=3478\ntls-listening-port=5349\nmin-port=50000\nmax-port=51000\n");
      }
    });
  });
});

describe("Coturn", () => {
  test("cloud-init passes cloud-init schema and the firewall passes nft -c, opening exactly the TURN ports", () => {
    const { coturn } = deploy();
    checkCloudInit(coturn.container.userData);
    const nft = fileAt(userDataOf(coturn), "/etc/nftables.conf");
    checkNftables(nft);
    const open = nft.split("\n").filter((l) => / dport /.test(l) && !l.includes("DHCPv6")).map((l) => l.trim().replace(/ comment .*/, ""));
    expect(open).toEqual(["udp dport { 3478, 5349 } accept", "tcp dport { 3478, 5349 } accept", "udp dport { 50000-51000 } accept"]);
  });

  test("denies the host's public IPv4, its external IPv4 and its public IPv6 as peers", () => {
    const { coturn } = deploy({}, { ...DUAL_STACK_HOST, publicIpv4: "5.6.7.8", externalIpv4: "5.6.7.9", ipv6: { ...DUAL_STACK_HOST.ipv6!, publicAddress: "2a01:4f8:1:2::3" } });
    const template = fileAt(userDataOf(coturn), "/etc/consul-template/templates/turnserver.conf.ctmpl");
    for (const address of ["5.6.7.8", "5.6.7.9", "2a01:4f8:1:2::3"]) expect(template.split("\n")).toContain(`denied-peer-ip=${address}`);
  });

  test("forwards 3478 and 5349 (UDP and TCP) and the UDP relay range on IPv4 and IPv6", () => {
    const { json } = deploy();
    const proxies = Object.fromEntries(instanceOf(json()).device.filter((d: any) => d.type === "proxy").map((d: any) => [d.name, d.properties]));
    const expected: Record<string, [string, string]> = {};
    for (const [proto, port] of [["udp", "3478"], ["tcp", "3478"], ["udp", "5349"], ["tcp", "5349"], ["udp", "50000-51000"]]) {
      expected[`proxy-${proto}-${port}-v4`] = [`${proto}:203.0.113.10:${port}`, `${proto}:10.10.1.15:${port}`];
      expected[`proxy-${proto}-${port}-v6`] = [`${proto}:[2001:db8::10]:${port}`, `${proto}:[fd10:10:10:1::1:15]:${port}`];
    }
    expect(Object.fromEntries(Object.entries(proxies).map(([n, p]: [string, any]) => [n, [p.listen, p.connect]]))).toEqual(expected);
    expect(Object.values(proxies).every((p: any) => p.nat === "true")).toBe(true);
  });

  test("mounts the ingress proxy's shared certificate volume read-only at /var/certs", () => {
    const { json } = deploy();
    expect(instanceOf(json()).device.find((d: any) => d.name === "attached-shared-certs").properties).toEqual({
      pool: "default",
      source: "ingress-proxy-shared-certs",
      path: "/var/certs",
      readonly: "true",
    });
  });

  test("writes the ports KV at module deploy", () => {
    const { json } = deploy({ listeningPort: 3479, minPort: 40000, maxPort: 40999 });
    expect(kvEntries(json())).toEqual({
      "service/coturn/ip-addr-host-part": "15",
      "service/coturn/listening-port": "3479",
      "service/coturn/tls-listening-port": "5349",
      "service/coturn/min-port": "40000",
      "service/coturn/max-port": "40999",
    });
  });

  test("the shared secret is a random password, referenced in the JSON and never a literal", () => {
    const { json, coturn } = deploy();
    const synthesized = json();
    const passwords = Object.entries(synthesized.resource.random_password) as [string, any][];
    expect(passwords).toHaveLength(1);
    expect(passwords[0][1]).toMatchObject({ length: 32, special: false });
    const reference = `\${random_password.${passwords[0][0]}.result}`;
    // Pushed root-only by the LXD API, and replaced with a replaced container.
    // Besides the container's own Consul token, one pushed file: the secret.
    const files = (Object.values(synthesized.resource.lxd_instance_file) as any[]).filter((f) => f.target_path !== CONSUL_TOKEN_PATH);
    expect(files).toEqual([
      expect.objectContaining({ instance: "coturn", target_path: COTURN_SECRET_PATH, content: `static-auth-secret=${reference}\n`, mode: "0600", uid: 0, gid: 0 }),
    ]);
    expect(files[0].lifecycle.replace_triggered_by).toEqual([expect.stringMatching(/^terraform_data\./)]);
    // Never in the user-data, which every user in the container can read; no template sequence
    // there at all (Terraform would interpolate it at apply).
    const userData: string = instanceOf(synthesized).config["cloud-init.user-data"];
    expect(userData).not.toContain("random_password");
    expect(userData).not.toMatch(/[$%]\{/);
    expect(coturn.sharedSecret).toMatch(/^\$\{TfToken\[/);
    // consul-template starts (and with it coturn) only once the secret has arrived.
    const runcmd: string[] = userDataOf(coturn).runcmd;
    const wait = runcmd.findIndex((c) => c.includes(COTURN_SECRET_PATH));
    expect(wait).toBeGreaterThan(0);
    expect(wait).toBeLessThan(runcmd.indexOf(CONSUL_TEMPLATE_START));
  });

  test("coturn runs only with the rendered config, can read the shared keys, and restarts when the certificate changes", () => {
    const doc = userDataOf(deploy().coturn);
    const dropIn = fileAt(doc, "/etc/systemd/system/coturn.service.d/matrix-lxd.conf");
    expect(dropIn).toContain(`ConditionPathExists=${COTURN_RENDERED_PATH}`);
    expect(dropIn).toContain("SupplementaryGroups=shared-certs");
    expect(dropIn).toContain("ExecStart=\nExecStart=/usr/bin/turnserver -c /etc/coturn/turnserver.conf");
    expect(fileAt(doc, "/etc/systemd/system/coturn-certificate-refresh.timer")).toContain("OnCalendar=*:0/10");
    expect(doc.runcmd).toContain("getent group shared-certs >/dev/null || groupadd --system --gid 4443 shared-certs");
    expect(doc.runcmd).toContain("systemctl enable --now coturn-certificate-refresh.timer");
    const sh = spawnSync("sh", ["-n"], { input: fileAt(doc, "/usr/local/sbin/coturn-prepare"), encoding: "utf8" });
    expect(sh.stderr).toBe("");
    expect(sh.status).toBe(0);
  });

  test("implements TurnServerRef and gives the turn: and turns: URIs", () => {
    const { coturn, host } = deploy();
    expect(coturn.host).toBe(host);
    expect([coturn.listeningPort, coturn.tlsListeningPort]).toEqual([3478, 5349]);
    expect(turnUris(coturn, "turn.example.com")).toEqual([
      "turns:turn.example.com:5349?transport=udp",
      "turns:turn.example.com:5349?transport=tcp",
      "turn:turn.example.com:3478?transport=udp",
      "turn:turn.example.com:3478?transport=tcp",
    ]);
  });

  test("IPv4-only hosts: no IPv6 proxies", () => {
    const { json } = deploy({}, IPV4_HOST);
    const names: string[] = instanceOf(json()).device.map((d: any) => d.name);
    expect(names.filter((n) => n.startsWith("proxy-"))).toHaveLength(5);
    expect(names.some((n) => n.endsWith("-v6"))).toBe(false);
  });

  test("rejects bad ports, naming the props and the rule", () => {
    expect(() => deploy({ minPort: 51000, maxPort: 50000 })).toThrow(/- minPort: must be less than maxPort \(got 51000 >= 50000\)/);
    expect(() => deploy({ minPort: 50000, maxPort: 50000 })).toThrow(/- minPort: must be less than maxPort/);
    expect(() => deploy({ listeningPort: 0, tlsListeningPort: 70000 })).toThrow(
      /- listeningPort: must be an integer from 1 to 65535, got 0[\s\S]*- tlsListeningPort: must be an integer from 1 to 65535, got 70000/,
    );
    expect(() => deploy({ listeningPort: 50500 })).toThrow(/- listeningPort: must lie outside the relay range 50000-51000, got 50500/);
    expect(() => deploy({ minPort: 1000, maxPort: 60000 })).toThrow(/- minPort: .*at least 1024[\s\S]*- maxPort: the relay range may span at most 16384 ports/);
    expect(() => deploy({ tlsListeningPort: 3478 })).toThrow(/- tlsListeningPort: must differ from listeningPort/);
    expect(() => deploy({ certificates: { sharedCertsVolume: "" } })).toThrow(/- certificates: must name/);
  });
});

describe("TurnDomain", () => {
  test("writes the TURN domain, its admin e-mail and the certificate request, all owned by Terraform", () => {
    const { stack } = hostStack();
    new TurnDomain(stack, "turn", { domain: "turn.example.com", adminEmail: "admin@example.com" });
    const json = synthJson(stack);
    expect(kvEntries(json)).toEqual({
      "service/coturn/coturn-domain": "turn.example.com",
      "service/coturn/coturn-domain-admin-email": "admin@example.com",
      "service/certbot/turn.example.com": "admin@example.com",
    });
    expect(Object.values(json.resource.consul_keys).flatMap((r: any) => r.key).every((k: any) => k.delete === true)).toBe(true);
  });

  test("rejects a bad domain or e-mail, naming the props", () => {
    const { stack } = hostStack();
    expect(() => new TurnDomain(stack, "turn", { domain: "Turn.Example.com.", adminEmail: "nobody" })).toThrow(/- domain: must be a lower-case DNS name[\s\S]*- adminEmail: must be an e-mail address/);
  });

  test("refuses a second owner of the certificate key or of the TURN domain in the stack", () => {
    const { stack } = hostStack();
    new TurnDomain(stack, "turn", { domain: "turn.example.com", adminEmail: "admin@example.com" });
    new CertificateDomains(stack, "certs", { domains: ["example.com", "turn.example.com"], adminEmail: "admin@example.com" });
    expect(() => Testing.synth(stack, true)).toThrow(/test\/certs also requests a certificate for turn\.example\.com/);
    const other = hostStack();
    new TurnDomain(other.stack, "a", { domain: "turn.example.com", adminEmail: "admin@example.com" });
    new TurnDomain(other.stack, "b", { domain: "turn2.example.com", adminEmail: "admin@example.com" });
    expect(() => Testing.synth(other.stack, true)).toThrow(/only one TurnDomain per stack/);
  });
});
