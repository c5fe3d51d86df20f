import { TerraformStack, TerraformVariable, Testing } from "cdktf";
import { parse } from "yaml";
import { WellknownServer, WellknownRef, WELLKNOWN_SITE_PATH, WELLKNOWN_RELOAD_SCRIPT } from "../constructs/modules/wellknown-server";
import { WellknownJsonRule, WellknownRedirectRule } from "../constructs/modules/wellknown-rule";
import { IngressProxy } from "../constructs/modules/ingress-proxy";
import { Host } from "../lib/host";
import { renderWellknownSite, renderWellknownSiteFromKv, renderWellknownSiteTemplate } from "../lib/render/wellknown";
import { hostStack, kvEntries, synthJson, DUAL_STACK_HOST } from "./support/fixtures";
import { checkCloudInit, checkNftables } from "./support/validators";

const CLIENT = { "m.homeserver": { base_url: "https://matrix.example.com" } };
const SERVER = { "m.server": "matrix.example.com:443" };

/** Every consul_keys entry of the synthesized stack: path → value, failing on a path owned twice. */
const kvOf = kvEntries;

const userDataOf = (server: WellknownServer) => parse(server.container.userData);
const fileOf = (doc: any, path: string) => doc.write_files.find((f: any) => f.path === path);

describe("WellknownServer", () => {
  test("deploys container and Consul service 'wellknown' at host part 16, serving HTTP to the ingress proxy only", () => {
    const { stack, host } = hostStack();
    const server = new WellknownServer(stack, "wellknown", { host, ingress: IngressProxy.reference(host) });
    const json = synthJson(stack);
    const instance = Object.values<any>(json.resource.lxd_instance)[0];
    expect(instance.name).toBe("wellknown");
    expect(instance.device.find((d: any) => d.name === "eth0").properties["ipv4.address"]).toBe("10.10.1.16");
    expect(instance.device.filter((d: any) => d.type === "proxy")).toEqual([]);
    expect(Object.values(json.resource.consul_service)).toEqual([expect.objectContaining({ name: "wellknown", address: "10.10.1.16", port: 80, tags: ["webserver"] })]);
    expect(server.serviceName).toBe("wellknown");

    const nft = fileOf(userDataOf(server), "/etc/nftables.conf").content;
    const accepts = nft.split("\n").filter((l: string) => / accept comment /.test(l) && !/DHCPv6/.test(l));
    expect(accepts).toEqual([
      '    ip saddr { 10.10.1.10/32 } tcp dport { 80 } accept comment "HTTP from the ingress proxy only"',
      '    ip6 saddr { fd10:10:10:1::1:10/128 } tcp dport { 80 } accept comment "HTTP from the ingress proxy only"',
    ]);
    checkNftables(nft);
  });

  test("registers itself as an ingress backend through Terraform, not from inside the container", () => {
    const { stack, host } = hostStack();
    const server = new WellknownServer(stack, "wellknown", { host, ingress: IngressProxy.reference(host) });
    expect(kvOf(synthJson(stack))).toEqual({ "service/haproxy/backends/no-ssl/wellknown": "" });
    expect(server.container.userData).not.toMatch(/consul kv|service\/haproxy/);
  });

  test("consul-template renders the site from the host's Consul and reloads nginx; the default site is removed", () => {
    const { stack, host } = hostStack();
    const doc = userDataOf(new WellknownServer(stack, "wellknown", { host, ingress: IngressProxy.reference(host) }));
    expect(fileOf(doc, "/etc/consul-template/templates/wellknown-site.ctmpl").content).toBe(renderWellknownSiteTemplate());
    const config = fileOf(doc, "/etc/consul-template/config.hcl").content;
    expect(config).toContain(`address = "${host.consul.address}"`);
    expect(config).toContain(`destination = "${WELLKNOWN_SITE_PATH}"`);
    expect(config).toContain(`command     = "${WELLKNOWN_RELOAD_SCRIPT}"`);
    expect(fileOf(doc, WELLKNOWN_SITE_PATH).content).toBe(renderWellknownSite([]));
    expect(fileOf(doc, WELLKNOWN_RELOAD_SCRIPT)).toEqual(expect.objectContaining({ permissions: "0755" }));
    expect(fileOf(doc, WELLKNOWN_RELOAD_SCRIPT).content).toMatch(/nginx -t -q/);
    const run: string[] = doc.runcmd;
    const at = (command: string) => run.findIndex((c) => c.includes(command));
    expect(at("rm -f /etc/nginx/sites-enabled/default")).toBeGreaterThan(-1);
    expect(at(`ln -sfn ${WELLKNOWN_SITE_PATH} /etc/nginx/sites-enabled/wellknown`)).toBeGreaterThan(at("rm -f /etc/nginx/sites-enabled/default"));
    expect(at("enable --now consul-template")).toBeGreaterThan(at("reload-or-restart nginx"));
  });

  test("the stock image installs nginx and the pinned consul-template; a pre-built image installs nothing", () => {
    const stock = hostStack();
    const stockServer = new WellknownServer(stock.stack, "wellknown", { host: stock.host, ingress: IngressProxy.reference(stock.host) });
    const stockDoc = userDataOf(stockServer);
    expect(stockDoc.packages).toEqual(expect.arrayContaining(["nginx", "curl", "unzip"]));
    expect(stockDoc.runcmd.some((c: string) => /sha256sum -c/.test(c))).toBe(true);
    checkCloudInit(stockServer.container.userData);

    const prebuilt = hostStack();
    const server = new WellknownServer(prebuilt.stack, "wellknown", { host: prebuilt.host, ingress: IngressProxy.reference(prebuilt.host), image: "local:wellknown" });
    const doc = userDataOf(server);
    expect(doc.packages).toBeUndefined();
    expect(server.container.userData).not.toMatch(/curl|releases\./);
    checkCloudInit(server.container.userData);
  });

  test("takes another name and host part", () => {
    const { stack, host } = hostStack();
    const server = new WellknownServer(stack, "wk", { host, ingress: IngressProxy.reference(host), name: "shared-wellknown", hostPart: 40 });
    const json = synthJson(stack);
    expect(server.container.address.ipv4).toBe("10.10.1.40");
    expect(kvOf(json)).toEqual({ "service/haproxy/backends/no-ssl/shared-wellknown": "" });
  });

  test("refuses a bad name and a bad host part, naming the prop and the valid range", () => {
    const { stack, host } = hostStack();
    expect(() => new WellknownServer(stack, "a", { host, ingress: IngressProxy.reference(host), name: "Well Known" })).toThrow(/name: must be lower-case letters, digits and dashes/);
    expect(() => new WellknownServer(stack, "b", { host, ingress: IngressProxy.reference(host), hostPart: 150 })).toThrow(/hostPart: 150 .* must be an integer from 2 to 254 outside the DHCP range 100-254/);
  });

  test("reference() names a server deployed elsewhere", () => {
    const host = new Host(DUAL_STACK_HOST);
    expect(WellknownServer.reference(host)).toEqual({ host, serviceName: "wellknown" });
    expect(WellknownServer.reference(host, { name: "other-wk" }).serviceName).toBe("other-wk");
    expect(() => WellknownServer.reference(host, { name: "-bad" })).toThrow(/name: must be/);
  });
});

describe("WellknownJsonRule and WellknownRedirectRule", () => {
  function projectStack(): { stack: TerraformStack; wellknown: WellknownRef } {
    const stack = new TerraformStack(Testing.app(), "project");
    return { stack, wellknown: WellknownServer.reference(new Host(DUAL_STACK_HOST)) };
  }

  test("a JSON rule writes its location and payload and routes host + path to the server", () => {
    const { stack, wellknown } = projectStack();
    new WellknownJsonRule(stack, "client", { wellknown, name: "matrix-client", domain: "example.com", path: "/.well-known/matrix/client", payload: CLIENT });
    const kv = kvOf(synthJson(stack));
    expect(kv).toEqual({
      "service/wellknown/json/example.com/matrix-client/location": "/.well-known/matrix/client",
      "service/wellknown/json/example.com/matrix-client/payload": expect.any(String),
      "service/haproxy/acl/wellknown-example-com-matrix-client/host": "example.com",
      "service/haproxy/acl/wellknown-example-com-matrix-client/path": "/.well-known/matrix/client",
      "service/haproxy/use-backend/wellknown-example-com-matrix-client": "wellknown",
    });
    expect(JSON.parse(kv["service/wellknown/json/example.com/matrix-client/payload"])).toEqual(CLIENT);
    // What the server renders from exactly these keys.
    expect(renderWellknownSiteFromKv(kv)).toContain(
      [
        "    location = /.well-known/matrix/client {",
        "        default_type application/json;",
        "        add_header Access-Control-Allow-Origin * always;",
        `        return 200 '${JSON.stringify(CLIENT)}';`,
        "    }",
      ].join("\n"),
    );
  });

  test("a redirect rule writes its location and URL and routes to the server's own backend name", () => {
    const stack = new TerraformStack(Testing.app(), "project");
    const wellknown = WellknownServer.reference(new Host(DUAL_STACK_HOST), { name: "shared-wk" });
    const rule = new WellknownRedirectRule(stack, "support", { wellknown, name: "proj-support", domain: "chat.example.org", path: "/.well-known/support", url: "https://help.example.org/" });
    expect(rule.aclName).toBe("wellknown-chat-example-org-proj-support");
    expect(kvOf(synthJson(stack))).toEqual({
      "service/wellknown/redirects/chat.example.org/proj-support/location": "/.well-known/support",
      "service/wellknown/redirects/chat.example.org/proj-support/url": "https://help.example.org/",
      "service/haproxy/acl/wellknown-chat-example-org-proj-support/host": "chat.example.org",
      "service/haproxy/acl/wellknown-chat-example-org-proj-support/path": "/.well-known/support",
      "service/haproxy/use-backend/wellknown-chat-example-org-proj-support": "shared-wk",
    });
    expect(rule.url).toBe("https://help.example.org/");
  });

  test("server and several rules on one domain: every key has exactly one owner, and no shared domain key", () => {
    const { stack, host } = hostStack();
    const wellknown = new WellknownServer(stack, "wellknown", { host, ingress: IngressProxy.reference(host) });
    new WellknownJsonRule(stack, "client", { wellknown, name: "matrix-client", domain: "example.com", path: "/.well-known/matrix/client", payload: CLIENT });
    new WellknownJsonRule(stack, "server", { wellknown, name: "matrix-server", domain: "example.com", path: "/.well-known/matrix/server", payload: SERVER });
    new WellknownRedirectRule(stack, "support", { wellknown, name: "support", domain: "example.com", path: "/.well-known/support", url: "https://example.com/help" });
    const json = synthJson(stack);
    const kv = kvOf(json); // throws on a key owned twice
    expect(Object.keys(kv).filter((k) => k.startsWith("service/wellknown/domains/"))).toEqual([]);
    expect(Object.keys(kv).filter((k) => k.startsWith("service/haproxy/use-backend/")).sort()).toEqual([
      "service/haproxy/use-backend/wellknown-example-com-matrix-client",
      "service/haproxy/use-backend/wellknown-example-com-matrix-server",
      "service/haproxy/use-backend/wellknown-example-com-support",
    ]);
    // Each resource holds the keys of one rule (or of the server) only, so destroying a rule removes exactly its keys.
    const ownerOf = (path: string) => ["matrix-client", "matrix-server", "support"].find((rule) => path.includes(rule)) ?? "server";
    for (const resource of Object.values<any>(json.resource.consul_keys)) {
      expect(new Set(resource.key.map((k: any) => ownerOf(k.path))).size).toBe(1);
    }
  });

  test("free text reaches Consul as written: Terraform template syntax is escaped, cdktf references still resolve", () => {
    const { stack, wellknown } = projectStack();
    const brand = new TerraformVariable(stack, "brand", { type: "string" });
    new WellknownJsonRule(stack, "client", { wellknown, name: "c", domain: "example.com", path: "/c", payload: { a: "${x} %{ if } $5", brand: brand.stringValue } });
    new WellknownRedirectRule(stack, "r", { wellknown, name: "r", domain: "example.com", path: "/r", url: "https://example.com/${x}" });
    const kv = kvOf(synthJson(stack));
    // Terraform turns `$${` into `${` and `%%{` into `%{`.
    expect(kv["service/wellknown/json/example.com/c/payload"]).toBe('{"a":"$${x} %%{ if } $5","brand":"${var.brand}"}');
    expect(kv["service/wellknown/redirects/example.com/r/url"]).toBe("https://example.com/$${x}");
  });

  test("reports every bad prop at once, naming the prop and what is valid", () => {
    const { stack, wellknown } = projectStack();
    let message = "";
    try {
      new WellknownJsonRule(stack, "bad", { wellknown, name: "Bad_Rule", domain: "Example.com.", path: ".well-known/x", payload: { a: undefined } });
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message).toMatch(/invalid WellknownJsonRule props/);
    expect(message).toMatch(/name: must be lower-case letters, digits and dashes/);
    expect(message).toMatch(/domain: must be a lower-case DNS name/);
    expect(message).toMatch(/path: must be an absolute path starting with "\/"/);
    expect(message).toMatch(/payload\.a: is undefined, which JSON cannot represent/);
  });

  test("refuses payloads JSON cannot carry faithfully, and redirect targets that are not http(s) URLs", () => {
    const { stack, wellknown } = projectStack();
    const base = { wellknown, domain: "example.com", path: "/.well-known/x" };
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    const bad: [string, object, RegExp][] = [
      ["cycle", cyclic, /payload\.self: refers to itself/],
      ["nan", { n: NaN }, /payload\.n: NaN is not a JSON number/],
      ["date", { d: new Date(0) }, /payload\.d: is a Date object/],
      ["fn", [() => 1], /payload\[0\]: is function/],
      ["string", "{}" as unknown as object, /payload: must be a JSON object or array, got string/],
    ];
    for (const [name, payload, error] of bad) expect(() => new WellknownJsonRule(stack, name, { ...base, name, payload })).toThrow(error);
    for (const url of ["ftp://example.com/", "https://example.com/a b", "https://example.com/\nX: y", "example.com"]) {
      expect(() => new WellknownRedirectRule(stack, `r${url.length}`, { ...base, name: "r", url })).toThrow(/url: must be an http\(s\) URL/);
    }
    expect(() => new WellknownRedirectRule(stack, "quote", { ...base, name: "q", path: "/x'y", url: "https://example.com/" })).toThrow(/path: must be/);
  });

  test("refuses a second rule with the same id or the same path on one domain", () => {
    const { stack, wellknown } = projectStack();
    new WellknownJsonRule(stack, "first", { wellknown, name: "matrix-client", domain: "example.com", path: "/.well-known/matrix/client", payload: CLIENT });
    expect(() => new WellknownRedirectRule(stack, "same-id", { wellknown, name: "matrix-client", domain: "example.com", path: "/other", url: "https://example.com/" })).toThrow(
      /rule id "matrix-client" on example\.com is already registered by project\/first/,
    );
    expect(() => new WellknownJsonRule(stack, "same-path", { wellknown, name: "other", domain: "example.com", path: "/.well-known/matrix/client", payload: CLIENT })).toThrow(
      /path \/\.well-known\/matrix\/client on example\.com is already registered by project\/first/,
    );
    // The same id on another domain is a different rule.
    new WellknownJsonRule(stack, "other-domain", { wellknown, name: "matrix-client", domain: "example.org", path: "/.well-known/matrix/client", payload: CLIENT });
  });

  test("claims are per host: another stack on the same host is refused, another host is not", () => {
    const app = Testing.app();
    const host = new Host(DUAL_STACK_HOST);
    const rule = { name: "matrix-client", domain: "example.com", path: "/.well-known/matrix/client", payload: CLIENT };
    new WellknownJsonRule(new TerraformStack(app, "a"), "rule", { wellknown: WellknownServer.reference(host), ...rule });
    expect(() => new WellknownJsonRule(new TerraformStack(app, "b"), "rule", { wellknown: WellknownServer.reference(host), ...rule })).toThrow(
      /already registered by a\/rule/,
    );
    const otherHost = new Host({ ...DUAL_STACK_HOST, hostId: "otherhost" });
    new WellknownJsonRule(new TerraformStack(app, "c"), "rule", { wellknown: WellknownServer.reference(otherHost), ...rule });
  });
});
