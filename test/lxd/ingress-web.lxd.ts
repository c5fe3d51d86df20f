/**
 * The ingress proxy with the real curl, through LXD's proxy devices on the public address:
 * HTTPS with the self-signed fallback certificate (trusted explicitly by its public key, as
 * no Let's Encrypt certificate can be issued here), routes from Consul KV, the admin-API
 * deny, HTTP→HTTPS except ACME, HSTS, a KV change picked up at run time; the well-known JSON
 * with CORS, Element's config.json, synapse-admin reachable from the admin network only.
 */
import { curlFromOutsideNetwork, deployment, eventually } from "./support/deployment";
import { curl, header, inContainer, must, shIn } from "./support/lxd";

const d = deployment();
const domain = d.state.facts.DOMAIN;
const ip = d.publicIp;
const proxy = d.name("ingress-proxy");

// The fallback certificate's public key, read from the proxy container: the only thing trusted.
const fallbackPem = inContainer(proxy, ["cat", "/etc/haproxy/ssl/fallback.pem"]).stdout;
const pin = (() => {
  const cert = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(fallbackPem)?.[0] ?? "";
  if (!cert) return "";
  const pub = must("openssl", ["x509", "-pubkey", "-noout"], { input: cert });
  const der = must("sh", ["-c", "openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64"], { input: pub });
  return `sha256//${der.trim()}`;
})();

// The fallback certificate's own name as SNI: HAProxy serves that certificate for it whatever
// certificates exist, so routing is checked by the Host header independently of SNI handling,
// which the first test checks with the real names.
const FALLBACK_SNI = "ingress-proxy.invalid";
const https = (host: string, path: string, extra: string[] = []) =>
  curl(["-k", "--pinnedpubkey", pin, "--resolve", `${FALLBACK_SNI}:443:${ip}`, "-H", `Host: ${host}`, ...extra, `https://${FALLBACK_SNI}${path}`]);
const httpsWithSni = (host: string, path: string) => curl(["-k", "--pinnedpubkey", pin, "--resolve", `${host}:443:${ip}`, `https://${host}${path}`]);
const http = (host: string, path: string) => curl(["--resolve", `${host}:80:${ip}`, `http://${host}${path}`]);

describe("ingress proxy", () => {
  test("the fallback certificate exists in the proxy container", () => {
    expect(pin).toMatch(/^sha256\/\/[A-Za-z0-9+/=]{44}$/);
  });

  test.each([`matrix.${domain}`, `element.${domain}`, domain])("a TLS handshake with SNI %s gets the fallback certificate (no Let's Encrypt certificate yet)", (host) => {
    const r = httpsWithSni(host, "/.well-known/matrix/server");
    expect(r.stderr).toBe("");
    expect(r.status).toBeGreaterThanOrEqual(200);
  });

  test(`HTTPS for matrix.${domain} routes to Synapse`, () => {
    const r = https(`matrix.${domain}`, "/_matrix/client/versions");
    expect(r.stderr).toBe("");
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body).versions.length).toBeGreaterThan(0);
  });

  test("HSTS on HTTPS answers", () => {
    const r = https(`matrix.${domain}`, "/_matrix/client/versions");
    expect(header(r.headers, "strict-transport-security")).toMatch(/^max-age=\d+/);
  });

  test("the Synapse admin API is denied (403) through the proxy", () => {
    expect(https(`matrix.${domain}`, "/_synapse/admin/v1/server_version").status).toBe(403);
    expect(https(`matrix.${domain}`, "/_synapse/%61dmin/v1/server_version").status).toBe(403);
  });

  test("HTTP redirects to HTTPS, except the ACME challenge path", () => {
    const r = http(`matrix.${domain}`, "/_matrix/client/versions");
    expect(r.status).toBe(301);
    expect(header(r.headers, "location")).toBe(`https://matrix.${domain}/_matrix/client/versions`);
    const acme = http(`matrix.${domain}`, "/.well-known/acme-challenge/lxd-suite");
    expect(acme.status).not.toBe(301);
    expect(header(acme.headers, "location")).toBeUndefined();
  });

  test("an unknown host name gets 403 from the default backend", () => {
    expect(https(`nothing.${domain}`, "/").status).toBe(403);
  });

  test("a route added to Consul KV is picked up, and its removal too", async () => {
    const acl = "lxd-suite-redirect";
    const host = `redirect-test.${domain}`;
    d.consul.put(`service/haproxy/acl/${acl}/host`, host);
    d.consul.put(`service/haproxy/redirect/${acl}`, "https://elsewhere.example.org");
    try {
      const added = await eventually(() => https(host, "/x").status === 302, 30_000);
      expect(added).toBe(true);
      expect(header(https(host, "/x").headers, "location")).toBe("https://elsewhere.example.org/x");
    } finally {
      d.consul.deleteKey(`service/haproxy/redirect/${acl}`);
      d.consul.deleteKey(`service/haproxy/acl/${acl}/host`);
    }
    const removed = await eventually(() => https(host, "/x").status === 403, 30_000);
    expect(removed).toBe(true);
  });
});

describe("well-known, Element, synapse-admin", () => {
  test(`https://${domain}/.well-known/matrix/client is JSON with CORS`, () => {
    const r = https(domain, "/.well-known/matrix/client");
    expect(r.status).toBe(200);
    expect(header(r.headers, "content-type")).toMatch(/^application\/json/);
    expect(header(r.headers, "access-control-allow-origin")).toBe("*");
    expect(JSON.parse(r.body)["m.homeserver"].base_url).toBe(`https://matrix.${domain}`);
  });

  test(`https://${domain}/.well-known/matrix/server names the homeserver`, () => {
    const r = https(domain, "/.well-known/matrix/server");
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body)["m.server"]).toBe(`matrix.${domain}:443`);
  });

  test("Element's config.json is locked to the homeserver", () => {
    const r = https(`element.${domain}`, "/config.json");
    expect(r.status).toBe(200);
    const config = JSON.parse(r.body);
    expect(config.default_server_config["m.homeserver"].base_url).toBe(`https://matrix.${domain}`);
    expect(config.disable_custom_urls).toBe(true);
  });

  test("synapse-admin answers the admin network (by default the host itself) with its config.json", () => {
    const r = curl([`http://${d.address("synapse-admin")}/config.json`], 5);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.body).restrictBaseUrl).toBe(`http://${d.address("synapse")}:8008`);
  });

  test("synapse-admin drops other containers and sources outside the admin network", () => {
    expect(shIn(d.client, `curl -s -o /dev/null -m 3 http://${d.address("synapse-admin")}/`).code).toBe(28);
    expect(curlFromOutsideNetwork(d, `http://${d.address("synapse-admin")}/`)).toBe(28);
  });

  test("synapse-admin has no route on the proxy", () => {
    expect(https(`synapse-admin.${domain}`, "/").status).toBe(403);
  });
});
