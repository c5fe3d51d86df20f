/**
 * The ingress proxy's consul-template templates, rendered by the REAL consul-template against a
 * REAL `consul agent -dev`, then checked by the real haproxy / nft; and the certbot scripts,
 * run by the real shell in a temporary root.
 */
import { spawn, spawnSync, ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as http from "node:http";
import * as https from "node:https";
import * as net from "node:net";
import * as os from "node:os";
import * as tls from "node:tls";
import * as path from "node:path";
import { renderHaproxyTemplate, renderIngressNftablesTemplate, HSTS_HEADER, PATH_NORMALIZATION } from "../lib/render/haproxy";
import { renderNftables, FirewallRule } from "../lib/render/nftables";
import {
  CERT_DEPLOY_HOOK,
  SHARED_CERTS_GID,
  renderCertbotIssueTemplate,
  renderCertDeployHook,
  renderFallbackCertScript,
} from "../lib/render/certbot";
import { kvPaths } from "../lib/kv";
import { ConsulDevAgent } from "./support/consul-template-render";
import { HAPROXY_BIN, SELF_SIGNED_PEM, checkHaproxy, checkNftables, selfSignedCertificate } from "./support/validators";

const OPTIONS = { dnsServer: "10.10.1.1:8600", dnsDomain: "consul", preferIpv6: false };
const CERTS = { "/etc/haproxy/ssl/fallback.pem": SELF_SIGNED_PEM };
const check = (cfg: string) => checkHaproxy(cfg, CERTS, { failOnWarnings: true });

// ACL names sort the opposite way of the required rule order, so a template that renders in
// KV (alphabetical) order fails the order test.
const SAMPLE_KV: Record<string, string> = {
  [kvPaths.backend("synapse", false)]: "",
  [kvPaths.backend("element", true)]: "",
  [kvPaths.aclHost("a-host")]: "element.example.com",
  [kvPaths.aclPath("b-path")]: "/_matrix",
  [kvPaths.aclHost("c-host-path")]: "example.com",
  [kvPaths.aclPath("c-host-path")]: "/.well-known/matrix/server",
  [kvPaths.aclPath("z-admin")]: "/_synapse/admin",
  [kvPaths.aclHost("m-old")]: "old.example.com",
  [kvPaths.deny("z-admin")]: "",
  [kvPaths.redirect("m-old")]: "https://element.example.com",
  [kvPaths.useBackend("a-host")]: "element",
  [kvPaths.useBackend("b-path")]: "synapse",
  [kvPaths.useBackend("c-host-path")]: "synapse",
  [kvPaths.tcpListener(5349)]: "turn",
};

let agent: ConsulDevAgent;
beforeAll(() => {
  agent = ConsulDevAgent.start();
});
afterAll(() => agent?.stop());

const lineIndex = (text: string, needle: string): number => {
  const lines = text.split("\n");
  const matches = lines.flatMap((l, i) => (l.includes(needle) ? [i] : []));
  expect(matches).toHaveLength(1);
  return matches[0];
};

/** The lines of one section (from its header to the next blank line). */
const section = (text: string, header: string): string[] => {
  const lines = text.split("\n");
  const start = lines.indexOf(header);
  expect(start).toBeGreaterThanOrEqual(0);
  const end = lines.findIndex((l, i) => i > start && l === "");
  return lines.slice(start, end < 0 ? undefined : end);
};

describe("haproxy.cfg template", () => {
  const template = renderHaproxyTemplate(OPTIONS);

  test("renders the sample KV into a configuration haproxy accepts without warnings", () => {
    const cfg = agent.render(template, SAMPLE_KV);
    check(cfg);
    expect(section(cfg, "backend synapse")).toContain(
      "  server-template synapse 1 _synapse._tcp.service.consul resolvers consul resolve-prefer ipv4 init-addr none check",
    );
    expect(section(cfg, "backend element")).toContain(
      "  server-template element 1 _element._tcp.service.consul resolvers consul resolve-prefer ipv4 init-addr none check ssl verify none",
    );
    expect(section(cfg, "listen tcp_5349")).toEqual(
      expect.arrayContaining(["  bind :5349", "  mode tcp", expect.stringMatching(/^ {2}server-template turn 1 _turn\._tcp\.service\.consul /)]),
    );
  });

  // Raw TCP to Synapse's plain-HTTP listener would pass every HTTP rule (the admin API answered on 8448).
  test("leaves out a TCP listener to an HTTP backend, and its firewall port stays closed", () => {
    const kv = { ...SAMPLE_KV, [kvPaths.tcpListener(8448)]: "synapse", [kvPaths.tcpListener(8449)]: "element" };
    const cfg = agent.render(template, kv);
    check(cfg);
    expect(cfg).not.toMatch(/^listen tcp_844[89]$/m);
    expect(cfg).toMatch(/^listen tcp_5349$/m);
    const nft = agent.render(renderIngressNftablesTemplate([{ protocol: "tcp", ports: [80, 443], comment: "web" }]), kv);
    checkNftables(nft);
    expect(nft).not.toMatch(/dport 844[89]/);
    expect(nft).toContain('tcp dport 5349 accept comment "ingress TCP listener"');
  });

  test("denies a backend's own paths inside the backend, whatever route sends requests there", () => {
    const kv = {
      ...SAMPLE_KV,
      [kvPaths.backendDeny("synapse", "admin")]: "/_synapse/admin",
      [kvPaths.backendDeny("synapse", "evil")]: "/x } || { always_true",
    };
    const cfg = agent.render(template, kv);
    check(cfg);
    expect(section(cfg, "backend synapse")).toEqual([
      "backend synapse",
      "  balance roundrobin",
      "  http-request deny deny_status 400 unless { var(txn.path_norm) -m found }",
      "  http-request deny deny_status 403 if { var(txn.path_norm) -m beg -i /_synapse/admin } || { var(txn.path_norm2) -m beg -i /_synapse/admin }",
      expect.stringMatching(/^ {2}server-template synapse /),
    ]);
    expect(section(cfg, "backend element").join("\n")).not.toContain("deny_status 403");
  });

  test("applies denies, then redirects, then host+path, path and host routes", () => {
    const cfg = agent.render(template, SAMPLE_KV);
    const order = [
      lineIndex(cfg, "http-request deny deny_status 403 if { var(txn.path_norm) -m beg -i /_synapse/admin } || { var(txn.path_norm2) -m beg -i /_synapse/admin }"),
      lineIndex(cfg, "http-request redirect prefix https://element.example.com code 302 if { hdr(host),field(1,:) -i old.example.com }"),
      lineIndex(cfg, "use_backend synapse if { hdr(host),field(1,:) -i example.com } { var(txn.path_norm) -m beg -i /.well-known/matrix/server }"),
      lineIndex(cfg, "use_backend synapse if { var(txn.path_norm) -m beg -i /_matrix }"),
      lineIndex(cfg, "use_backend element if { hdr(host),field(1,:) -i element.example.com }"),
    ];
    const lines = cfg.split("\n");
    const https = lineIndex(cfg, "frontend https_443");
    order.push(lines.findIndex((l, i) => i > https && l === "  default_backend default"));
    expect(order).toEqual([...order].sort((a, b) => a - b));
    // Every rule sits in the HTTPS frontend, after its header.
    expect(order[0]).toBeGreaterThan(https);
  });

  test("matches every path rule as a prefix of the normalized path, after refusing paths it cannot normalize", () => {
    const cfg = agent.render(template, SAMPLE_KV);
    const https = section(cfg, "frontend https_443");
    const pathRules = https.filter((l) => /^ {2}(use_backend|http-request (deny|redirect)) .* if .*txn\.path_norm\) -m beg/.test(l));
    expect(pathRules.length).toBe(3);
    for (const line of pathRules) expect(line).toContain("{ var(txn.path_norm) -m beg -i /");
    const firstRule = https.findIndex((l) => pathRules.includes(l));
    expect(https.slice(0, firstRule)).toEqual(expect.arrayContaining(PATH_NORMALIZATION.map((l) => `  ${l}`)));
    // `path_beg,<converter>` silently becomes an exact match in HAProxy.
    expect(cfg).not.toMatch(/path_beg,/);
  });

  test("an empty KV store renders a valid proxy that answers 403 and still serves ACME challenges", () => {
    const cfg = agent.render(template, {});
    check(cfg);
    expect(cfg).not.toMatch(/^\s*(use_backend (?!certbot)|http-request (deny|redirect) .* if \{ (hdr|var\(txn\.path_norm\) -m beg))/m);
    expect(section(cfg, "backend default")).toContain("  http-request deny deny_status 403");
    expect(section(cfg, "frontend http_80")).toEqual([
      "frontend http_80",
      "  bind :80",
      "  bind :::80 v6only",
      "  acl acme_challenge path_beg /.well-known/acme-challenge/",
      "  http-request redirect scheme https code 301 unless acme_challenge",
      "  use_backend certbot if acme_challenge",
      "  default_backend default",
    ]);
    expect(section(cfg, "backend certbot")).toContain("  server certbot 127.0.0.1:8080");
  });

  test("terminates TLS 1.2+ only, with HSTS and forwarded headers that clients cannot forge", () => {
    const cfg = agent.render(template, {});
    expect(cfg).toContain("  ssl-default-bind-options prefer-client-ciphers ssl-min-ver TLSv1.2 no-tls-tickets");
    expect(cfg).not.toMatch(/ssl-default-bind-ciphers .*(CBC|SHA:|RC4|3DES|DES-)/);
    const https = section(cfg, "frontend https_443");
    // The fallback first: HAProxy's default certificate for any name without its own.
    expect(https).toContain("  bind :443 ssl crt /etc/haproxy/ssl/fallback.pem crt /etc/haproxy/ssl/ alpn h2,http/1.1");
    expect(https.join("\n")).not.toContain("strict-sni");
    expect(https).toContain(`  http-after-response set-header Strict-Transport-Security "${HSTS_HEADER}"`);
    expect(HSTS_HEADER).toBe("max-age=63072000; includeSubDomains");
    expect(https).toContain("  http-request set-header X-Forwarded-For %[src]");
    expect(https).toContain("  http-request set-header X-Forwarded-Proto https");
    expect(cfg).not.toContain("option forwardfor");
  });

  test("leaves out entries that would break haproxy.cfg instead of refusing the whole configuration", () => {
    const kv = {
      ...SAMPLE_KV,
      [kvPaths.backend("synapse", true)]: "", // also registered as no-ssl
      [kvPaths.backend("default", false)]: "", // the proxy's own backend name
      [kvPaths.aclHost("evil")]: "example.com }  or { always_true",
      [kvPaths.useBackend("evil")]: "synapse",
      [kvPaths.aclPath("orphan")]: "/orphan",
      [kvPaths.useBackend("orphan")]: "not-registered", // no such backend yet
      [kvPaths.useBackend("no-acl")]: "synapse", // ACL not written yet
      [kvPaths.redirect("b-path")]: "javascript:alert(1)",
      [kvPaths.tcpListener(443)]: "synapse",
      [kvPaths.tcpListener(70000)]: "synapse",
      [kvPaths.tcpListener(9000)]: "bad service",
    };
    const cfg = agent.render(template, kv);
    check(cfg);
    expect(cfg.match(/^backend synapse$/gm)).toHaveLength(1);
    expect(section(cfg, "backend synapse").join("\n")).not.toContain("ssl verify none");
    expect(cfg.match(/^backend default$/gm)).toHaveLength(1);
    expect(cfg).not.toContain("always_true");
    expect(cfg).not.toContain("not-registered");
    expect(cfg).not.toContain("javascript:");
    expect(cfg).not.toMatch(/^listen tcp_(443|70000|9000)$/m);
    expect(cfg).toMatch(/^listen tcp_5349$/m);
  });

  test("prefers IPv6 and listens on IPv6 only when asked", () => {
    const v4only = agent.render(renderHaproxyTemplate({ ...OPTIONS, listenIpv6: false }), SAMPLE_KV);
    expect(v4only).not.toContain(":::");
    check(v4only);
    const v6 = agent.render(renderHaproxyTemplate({ ...OPTIONS, preferIpv6: true, dnsServer: "fd10:10:10:1::1:1:8600" }), SAMPLE_KV);
    expect(section(v6, "backend synapse").find((l) => l.includes("server-template"))).toContain("resolve-prefer ipv6");
    expect(v6).toContain("  nameserver consul fd10:10:10:1::1:1:8600");
    check(v6);
  });
});

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer().on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

function request(tls: boolean, port: number, urlPath: string, host = "localhost"): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const options = { host: "127.0.0.1", port, path: urlPath, headers: { Host: host }, agent: false as const, timeout: 5000 };
    const done = (res: http.IncomingMessage) => {
      let body = "";
      res.setEncoding("utf8").on("data", (d) => (body += d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    };
    const req = tls
      ? https.request({ ...options, servername: "localhost", rejectUnauthorized: false }, done)
      : http.request(options, done);
    req.on("error", reject).on("timeout", () => req.destroy(new Error(`timeout: ${urlPath}`)));
    req.end();
  });
}

/** An HTTPS GET with the request target sent byte for byte (no client-side normalization). */
function rawRequest(port: number, urlPath: string, host: string): Promise<{ status: number }> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: "127.0.0.1", port, servername: "localhost", rejectUnauthorized: false, timeout: 5000 }, () => {
      socket.write(`GET ${urlPath} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
    });
    let data = "";
    socket.setEncoding("utf8").on("data", (d) => (data += d));
    socket.on("end", () => {
      const status = /^HTTP\/1\.[01] (\d{3})/.exec(data);
      if (status) resolve({ status: Number(status[1]) });
      else reject(new Error(`no HTTP status for ${urlPath}: ${JSON.stringify(data.slice(0, 200))}`));
    });
    socket.on("error", reject).on("timeout", () => socket.destroy(new Error(`timeout: ${urlPath}`)));
  });
}

/** Completes a TLS handshake (with `servername` as SNI, or none) and returns the server's certificate. */
function tlsPeer(port: number, servername?: string): Promise<tls.PeerCertificate> {
  return new Promise((resolve, reject) => {
    // Node sends no SNI for an IP address host unless `servername` is given.
    const socket = tls.connect({ host: "127.0.0.1", port, ...(servername ? { servername } : {}), rejectUnauthorized: false, timeout: 5000 }, () => {
      const peer = socket.getPeerCertificate();
      socket.end();
      resolve(peer);
    });
    socket.on("error", reject).on("timeout", () => socket.destroy(new Error("TLS handshake timed out")));
  });
}

describe("a real HAProxy running the rendered configuration", () => {
  // Backends have no servers here (Consul DNS is a closed loopback port), so a routed request
  // answers 503, a deny or the default backend 403.
  const kv = {
    [kvPaths.backend("synapse", false)]: "",
    [kvPaths.backend("element", true)]: "",
    [kvPaths.aclPath("synapse")]: "/_synapse",
    [kvPaths.useBackend("synapse")]: "synapse",
    [kvPaths.aclPath("synapse-admin")]: "/_synapse/admin",
    [kvPaths.deny("synapse-admin")]: "",
    [kvPaths.aclHost("element")]: "element.example.com",
    [kvPaths.useBackend("element")]: "element",
    [kvPaths.aclHost("wellknown")]: "example.com",
    [kvPaths.aclPath("wellknown")]: "/.well-known/matrix",
    [kvPaths.useBackend("wellknown")]: "synapse",
    [kvPaths.aclHost("old")]: "old.example.com",
    [kvPaths.redirect("old")]: "https://new.example.com",
    [kvPaths.aclHost("encoded")]: "encoded.example.com",
    [kvPaths.redirect("encoded")]: "https://new.example.com/a%20b%[src]",
    // A route shape that sends a whole host to Synapse, and the deny on Synapse's backend.
    [kvPaths.aclHost("whole-host")]: "matrix.example.com",
    [kvPaths.useBackend("whole-host")]: "synapse",
    [kvPaths.backendDeny("synapse", "admin")]: "/_synapse/admin",
    // A backend deny with no frontend deny of the same path: only the backend refuses it.
    [kvPaths.backend("internal", false)]: "",
    [kvPaths.backendDeny("internal", "secret")]: "/secret",
    [kvPaths.aclHost("internal")]: "internal.example.com",
    [kvPaths.useBackend("internal")]: "internal",
  };
  let proxy: ChildProcess | undefined;
  let certbot: http.Server | undefined;
  let root: string;
  let fallbackScript: ReturnType<typeof runScript> | undefined;
  let output = "";
  let cfgText = "";
  const ports = { http: 0, https: 0 };

  beforeAll(async () => {
    const [dns, stats, challenge] = [await freePort(), await freePort(), await freePort()];
    // Stands in for certbot's standalone server.
    certbot = http.createServer((req, res) => res.end(`challenge ${req.url}`));
    await new Promise<void>((resolve) => certbot!.listen(challenge, "127.0.0.1", resolve));
    [ports.http, ports.https] = [await freePort(), await freePort()];
    const cfg = agent.render(renderHaproxyTemplate({ ...OPTIONS, dnsServer: `127.0.0.1:${dns}`, listenIpv6: false }), kv);
    cfgText = cfg;
    root = fs.mkdtempSync(path.join(os.tmpdir(), "matrix-lxd-haproxy-"));
    fs.mkdirSync(path.join(root, "ssl"));
    // The certificates of a proxy with one Let's Encrypt certificate so far: the fallback that
    // the first boot makes (by the real script), and one domain's chain + key, whose name
    // sorts before "fallback.pem" in the directory.
    fallbackScript = runScript(renderFallbackCertScript());
    const made = fallbackScript.run();
    if (made.status !== 0) throw new Error(`fallback certificate script failed:\n${made.stderr}`);
    fs.copyFileSync(path.join(fallbackScript.root, "etc/haproxy/ssl/fallback.pem"), path.join(root, "ssl", "fallback.pem"));
    const element = selfSignedCertificate("element.example.com");
    fs.writeFileSync(path.join(root, "ssl", "element.example.com.pem"), element.certificate + element.key, { mode: 0o600 });
    const local = cfg
      .replace(/^ {2}bind :80$/m, `  bind 127.0.0.1:${ports.http}`)
      .replace(/^ {2}bind :443 /m, `  bind 127.0.0.1:${ports.https} `)
      .replace(/^ {2}bind 127\.0\.0\.1:6080$/m, `  bind 127.0.0.1:${stats}`)
      .replace(/^ {2}(chroot|stats socket|user|group) .*\n/gm, "")
      .replace("server certbot 127.0.0.1:8080", `server certbot 127.0.0.1:${challenge}`)
      .split("/etc/haproxy/ssl/")
      .join(`${root}/ssl/`);
    expect(local).not.toMatch(/bind :/);
    fs.writeFileSync(path.join(root, "haproxy.cfg"), local);
    proxy = spawn(HAPROXY_BIN, ["-db", "-f", path.join(root, "haproxy.cfg")], { stdio: ["ignore", "pipe", "pipe"] });
    proxy.stdout?.on("data", (d) => (output += d));
    proxy.stderr?.on("data", (d) => (output += d));
    const deadline = Date.now() + 10_000;
    for (;;) {
      if (proxy.exitCode !== null) throw new Error(`haproxy exited (${proxy.exitCode}):\n${output}`);
      const up = await new Promise<boolean>((resolve) => {
        const socket = net.connect(ports.https, "127.0.0.1", () => resolve(true)).on("error", () => resolve(false));
        socket.on("connect", () => socket.destroy());
      });
      if (up) break;
      if (Date.now() > deadline) throw new Error(`haproxy did not listen within 10 s:\n${output}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  });

  afterAll(async () => {
    if (proxy && proxy.exitCode === null) {
      const exited = new Promise((r) => proxy!.once("exit", r));
      proxy.kill("SIGTERM");
      await exited;
    }
    await new Promise((r) => (certbot ? certbot.close(r) : r(undefined)));
    if (root) fs.rmSync(root, { recursive: true, force: true });
    fallbackScript?.cleanup();
  });

  // Before Let's Encrypt has issued a name (or while issuance fails), its clients must still get
  // a TLS connection: the self-signed fallback, not a refused handshake.
  test.each([
    ["matrix.example.com", "ingress-proxy.invalid"],
    ["example.com", "ingress-proxy.invalid"],
    ["(none)", "ingress-proxy.invalid"],
    ["element.example.com", "element.example.com"],
  ])("a TLS handshake with SNI %s completes and gets the certificate of %s", async (servername, commonName) => {
    const peer = await tlsPeer(ports.https, servername === "(none)" ? undefined : servername);
    expect(peer.subject.CN).toBe(commonName);
  });

  test.each([
    ["/_synapse/admin/v1/users", "localhost", 403],
    ["/_synapse/%61dmin/v1/users", "localhost", 403],
    ["/_Synapse/Admin/v1/users", "localhost", 403],
    ["/_synapse/client/v1/password_reset", "localhost", 503],
    ["/_matrix/client/versions", "localhost", 403],
    ["/", "element.example.com", 503],
    ["/.well-known/matrix/server", "example.com:443", 503],
    ["/other", "example.com", 403],
  ])("HTTPS %s for Host %s answers %d", async (urlPath, host, status) => {
    const answer = await request(true, ports.https, urlPath, host);
    expect(answer.status).toBe(status);
    expect(answer.headers["strict-transport-security"]).toBe(HSTS_HEADER);
  });

  // Every spelling of the admin path, on a host whose every path goes to Synapse: denied (403)
  // or refused as unnormalizable (400), never routed (503 here, a backend with no server).
  const ADMIN_SPELLINGS = [
    "/_synapse/admin/v1/users",
    "/_synapse/admin/v1/users/%zz",
    "/_synapse/admin/v1/users/%",
    "/_synapse/admin%",
    "/_synapse%zz/admin",
    "//_synapse/admin/v1/users",
    "/_synapse//admin/v1/users",
    "/_synapse/./admin/v1/users",
    "/./_synapse/admin",
    "/_synapse/%2e/admin",
    "/_synapse%2F%2Fadmin",
    "/_synapse/x/../admin",
    "/_synapse/%2e%2e/_synapse/admin",
    "/_synapse\\admin",
    "/_synapse%5cadmin",
    "/_synapse/%61dmin",
    "/_synapse/%2561dmin",
    "/_synapse/%252561dmin/../admin",
    "/_SYNAPSE/ADMIN",
  ];
  test.each(ADMIN_SPELLINGS)("the admin path spelled %s never reaches Synapse, whatever the route", async (urlPath) => {
    for (const host of ["matrix.example.com", "localhost"]) {
      const answer = await rawRequest(ports.https, urlPath, host);
      expect([host, answer.status, [400, 403].includes(answer.status)]).toEqual([host, answer.status, true]);
    }
  });

  test.each(["/secret", "/SECRET/x", "//secret", "/./secret", "/%73ecret", "/%2573ecret", "/%2F%2Fsecret"])(
    "the backend's own deny refuses %s on a host routed wholly to it",
    async (urlPath) => {
      expect((await rawRequest(ports.https, urlPath, "internal.example.com")).status).toBe(403);
      // No frontend rule denies it: on a host routed to another backend it is routed (503 here).
      expect((await rawRequest(ports.https, urlPath, "element.example.com")).status).toBe(503);
    },
  );

  test("a backend with denies still serves its other paths", async () => {
    expect((await rawRequest(ports.https, "/public/secret", "internal.example.com")).status).toBe(503);
  });

  test.each([
    ["/_matrix/client/v3/rooms/%21abc%3Aexample.com/state/m.room.name/", 503],
    ["/_matrix/client/v3/rooms/%21abc%3Aexample.com/event/%24a%2Fb%2F%2Fc", 503],
    ["/_matrix/media/v3/download/example.com/abc/a..b.png", 503],
    ["/_synapse/client/v1/password_reset", 503],
  ])("an ordinary Matrix path %s still reaches Synapse (%d)", async (urlPath, status) => {
    expect((await rawRequest(ports.https, urlPath, "matrix.example.com")).status).toBe(status);
  });

  test("the statistics page answers on loopback only", () => {
    expect(cfgText).toMatch(/^listen stats\n {2}bind 127\.0\.0\.1:6080\n(?! {2}bind)/m);
  });

  test("redirects by prefix, keeping the path and query", async () => {
    const answer = await request(true, ports.https, "/room?via=x", "old.example.com");
    expect(answer.status).toBe(302);
    expect(answer.headers.location).toBe("https://new.example.com/room?via=x");
  });

  test("a redirect prefix is used literally, percent signs included", async () => {
    const answer = await request(true, ports.https, "/room", "encoded.example.com");
    expect(answer.status).toBe(302);
    expect(answer.headers.location).toBe("https://new.example.com/a%20b%[src]/room");
  });

  test("plain HTTP redirects to HTTPS, except ACME challenges, which go to certbot", async () => {
    const redirect = await request(false, ports.http, "/some/page", "matrix.example.com");
    expect(redirect.status).toBe(301);
    expect(redirect.headers.location).toBe("https://matrix.example.com/some/page");
    const challenge = await request(false, ports.http, "/.well-known/acme-challenge/token", "matrix.example.com");
    expect(challenge.status).toBe(200);
    expect(challenge.body).toBe("challenge /.well-known/acme-challenge/token");
  });
});

describe("nftables template", () => {
  const rules: FirewallRule[] = [
    { protocol: "tcp", ports: [80, 443], comment: "web" },
    { protocol: "tcp", ports: [6080], from: ["10.10.1.0/24"], comment: "stats" },
  ];
  const template = renderIngressNftablesTemplate(rules);

  test("with no listeners it renders exactly the static ruleset", () => {
    expect(agent.render(template, {})).toBe(renderNftables({ rules }));
  });

  test("opens each usable TCP listener port, and nft accepts the result", () => {
    const out = agent.render(template, {
      [kvPaths.tcpListener(8448)]: "synapse",
      [kvPaths.tcpListener(5000)]: "other",
      [kvPaths.tcpListener(443)]: "synapse",
      [kvPaths.tcpListener(70000)]: "synapse",
      [`${kvPaths.tcpListener(1)}x`]: "synapse",
    });
    checkNftables(out);
    const accepted = out.split("\n").filter((l) => l.includes('"ingress TCP listener"'));
    expect(accepted.map((l) => l.trim())).toEqual([
      'tcp dport 5000 accept comment "ingress TCP listener"',
      'tcp dport 8448 accept comment "ingress TCP listener"',
    ]);
    // The listener rules are inside the input chain, before it closes.
    const lines = out.split("\n");
    expect(lines.indexOf(accepted[1])).toBeLessThan(lines.indexOf("  chain forward {"));
  });
});

describe("certbot issuance template", () => {
  const sh = (args: string[], input?: string) => spawnSync("sh", args, { encoding: "utf8", input });

  test("runs one idempotent standalone HTTP-01 certonly per requested domain with the deploy hook", () => {
    const script = agent.render(renderCertbotIssueTemplate(), {
      [kvPaths.certificateDomain("example.com")]: "admin@example.com",
      [kvPaths.certificateDomain("matrix.example.com")]: "admin@example.com",
      [kvPaths.certificateDomain("evil.example.com")]: "x'; rm -rf / #@example.com",
      [kvPaths.certificateDomain("Bad_Name")]: "admin@example.com",
    });
    expect(sh(["-n"], script).status).toBe(0);
    const certonly = script.split("\n").filter((l) => l.startsWith("certbot "));
    expect(certonly).toEqual(
      ["example.com", "matrix.example.com"].map(
        (d) =>
          `certbot certonly --standalone --http-01-port 8080 --http-01-address 127.0.0.1 --preferred-challenges http --non-interactive --agree-tos` +
          ` -m 'admin@example.com' -d '${d}' --cert-name '${d}' --keep-until-expiring --deploy-hook ${CERT_DEPLOY_HOOK} || status=1`,
      ),
    );
    expect(script).not.toContain("rm -rf");
    expect(script).toContain("deploy_if_missing 'matrix.example.com'");
  });

  test("with no domains it does nothing and succeeds", () => {
    const script = agent.render(renderCertbotIssueTemplate({ acmeServer: "https://acme-staging.example/directory" }), {});
    expect(script).not.toMatch(/^certbot /m);
    expect(script).toMatch(/^exit "\$status"$/m);
    expect(sh(["-n"], script).status).toBe(0);
  });

  test("passes a custom ACME server", () => {
    const script = agent.render(renderCertbotIssueTemplate({ acmeServer: "https://acme-staging.example/directory" }), {
      [kvPaths.certificateDomain("example.com")]: "admin@example.com",
    });
    expect(script).toMatch(/^certbot certonly .* --server 'https:\/\/acme-staging\.example\/directory' /m);
  });
});

/**
 * Runs a certbot script for real, with its absolute directories moved into a temporary root
 * and `systemctl` replaced by a stub that records its arguments.
 */
function runScript(script: string) {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "matrix-lxd-certbot-"));
  const bin = path.join(root, "bin");
  fs.mkdirSync(bin);
  fs.writeFileSync(path.join(bin, "systemctl"), `#!/bin/sh\necho "$@" >> ${root}/systemctl.log\n`, { mode: 0o755 });
  for (const dir of ["etc/haproxy/ssl", "var/certs", "etc/letsencrypt/live"]) fs.mkdirSync(path.join(root, dir), { recursive: true });
  const moved = script.replace(/(?<=[\s"'])\/(etc\/haproxy\/ssl|var\/certs|etc\/letsencrypt)/g, `${root}/$1`);
  const file = path.join(root, "script.sh");
  fs.writeFileSync(file, moved, { mode: 0o755 });
  const run = (env: Record<string, string> = {}) => {
    const full: NodeJS.ProcessEnv = { ...process.env, PATH: `${bin}:${process.env.PATH}`, ...env };
    if (!("RENEWED_LINEAGE" in env)) delete full.RENEWED_LINEAGE;
    return spawnSync("sh", [file], { encoding: "utf8", env: full });
  };
  return { root, run, cleanup: () => fs.rmSync(root, { recursive: true, force: true }) };
}

const mode = (file: string) => (fs.statSync(file).mode & 0o777).toString(8);

describe("certificate deploy hook", () => {
  test("gives HAProxy chain+key (0600) and coturn the FULL chain and a key only root and the shared-certs group read", () => {
    const sandbox = runScript(renderCertDeployHook());
    try {
      const lineage = path.join(sandbox.root, "etc/letsencrypt/live/matrix.example.com");
      fs.mkdirSync(lineage);
      const chain = "-----LEAF-----\n-----INTERMEDIATE-----\n";
      fs.writeFileSync(path.join(lineage, "cert.pem"), "-----LEAF-----\n");
      fs.writeFileSync(path.join(lineage, "fullchain.pem"), chain);
      fs.writeFileSync(path.join(lineage, "privkey.pem"), "-----KEY-----\n");
      const r = sandbox.run({ RENEWED_LINEAGE: lineage });
      expect(r.stderr).toBe("");
      expect(r.status).toBe(0);
      const pem = path.join(sandbox.root, "etc/haproxy/ssl/matrix.example.com.pem");
      expect(fs.readFileSync(pem, "utf8")).toBe(chain + "-----KEY-----\n");
      expect(mode(pem)).toBe("600");
      expect(fs.readdirSync(path.join(sandbox.root, "etc/haproxy/ssl"))).toEqual(["matrix.example.com.pem"]);
      const shared = path.join(sandbox.root, "var/certs");
      expect(fs.readFileSync(path.join(shared, "matrix.example.com.fullchain.pem"), "utf8")).toBe(chain);
      const key = path.join(shared, "matrix.example.com.key.pem");
      expect(mode(key)).toBe("640");
      expect(fs.statSync(key).gid).toBe(SHARED_CERTS_GID);
      expect(fs.readFileSync(path.join(sandbox.root, "systemctl.log"), "utf8")).toBe("try-reload-or-restart haproxy.service\n");
    } finally {
      sandbox.cleanup();
    }
  });

  test("refuses to run without RENEWED_LINEAGE", () => {
    const sandbox = runScript(renderCertDeployHook());
    try {
      const r = sandbox.run();
      expect(r.status).not.toBe(0);
      expect(r.stderr).toContain("RENEWED_LINEAGE");
      expect(fs.existsSync(path.join(sandbox.root, "systemctl.log"))).toBe(false);
    } finally {
      sandbox.cleanup();
    }
  });
});

describe("fallback certificate", () => {
  test("is made once: a matching certificate and key for HAProxy and coturn, kept on later boots", () => {
    const sandbox = runScript(renderFallbackCertScript());
    try {
      const first = sandbox.run();
      expect(first.status).toBe(0);
      const pem = path.join(sandbox.root, "etc/haproxy/ssl/fallback.pem");
      const chain = path.join(sandbox.root, "var/certs/fallback.fullchain.pem");
      const key = path.join(sandbox.root, "var/certs/fallback.key.pem");
      expect(mode(pem)).toBe("600");
      expect(mode(key)).toBe("640");
      expect(fs.readFileSync(pem, "utf8")).toBe(fs.readFileSync(chain, "utf8") + fs.readFileSync(key, "utf8"));
      // The key belongs to the certificate.
      const pub = (args: string[]) => spawnSync("openssl", args, { encoding: "utf8" }).stdout;
      expect(pub(["pkey", "-in", key, "-pubout"])).toBe(pub(["x509", "-in", chain, "-noout", "-pubkey"]));
      checkHaproxy("global\ndefaults\n  mode http\n  timeout client 1s\nfrontend f\n  bind :443 ssl crt " + pem + "\n", undefined, {});

      const before = fs.readFileSync(pem, "utf8");
      expect(sandbox.run().status).toBe(0);
      expect(fs.readFileSync(pem, "utf8")).toBe(before);

      fs.rmSync(key);
      expect(sandbox.run().status).toBe(0);
      expect(fs.readFileSync(pem, "utf8")).not.toBe(before);
      expect(fs.readFileSync(pem, "utf8")).toContain(fs.readFileSync(key, "utf8"));
    } finally {
      sandbox.cleanup();
    }
  });
});
