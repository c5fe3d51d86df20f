/**
 * The well-known server's nginx site: the pure renderer, the consul-template template rendered
 * by the real consul-template against a real `consul agent -dev`, `nginx -t` on the results,
 * and a real nginx answering requests with the rendered site.
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as http from "node:http";
import * as os from "node:os";
import * as path from "node:path";
import {
  renderWellknownSite,
  renderWellknownSiteFromKv,
  renderWellknownSiteTemplate,
  wellknownEntriesFromKv,
  WellknownEntry,
} from "../lib/render/wellknown";
import { ConsulDevAgent, freeLoopbackPorts } from "./support/consul-template-render";
import { checkNginxSite, NGINX_BIN } from "./support/validators";

const CLIENT = { "m.homeserver": { base_url: "https://matrix.example.com" }, "org.example.note": "it's $5, a \\ and a \"quote\"\n€" };
const SERVER_LEGACY = `'{"m.server": "matrix.example.com:443"}'`;
const CHAT_CLIENT = { "m.homeserver": { base_url: "https://matrix.chat.example.org" } };

/** Two domains with JSON and redirect rules, a legacy single-quoted payload and legacy domain keys. */
const SAMPLE_KV: Record<string, string> = {
  "service/wellknown/json/example.com/matrix-client/location": "/.well-known/matrix/client",
  "service/wellknown/json/example.com/matrix-client/payload": JSON.stringify(CLIENT),
  "service/wellknown/json/example.com/matrix-server/location": "/.well-known/matrix/server",
  "service/wellknown/json/example.com/matrix-server/payload": SERVER_LEGACY,
  "service/wellknown/redirects/example.com/support/location": "/.well-known/support-page",
  "service/wellknown/redirects/example.com/support/url": "https://help.example.com/matrix?from=wellknown",
  "service/wellknown/json/chat.example.org/chat-client/location": "/.well-known/matrix/client",
  "service/wellknown/json/chat.example.org/chat-client/payload": JSON.stringify(CHAT_CLIENT),
  "service/wellknown/redirects/chat.example.org/docs/location": "/.well-known/docs",
  "service/wellknown/redirects/chat.example.org/docs/url": "http://docs.example.org/",
  "service/wellknown/domains/example.com": "",
  "service/wellknown/domains/old.example.net": "",
};

/** Keys that try to break out of the nginx site, and keys that are merely malformed. */
const HOSTILE_KV: Record<string, string> = {
  "service/wellknown/json/evil.com;/x/location": "/a",
  "service/wellknown/json/evil.com;/x/payload": "{}",
  "service/wellknown/json/EVIL.example.com/x/location": "/a",
  "service/wellknown/json/EVIL.example.com/x/payload": "{}",
  "service/wellknown/json/example.com/inject/location": "/x { return 200 hi; } location = /y",
  "service/wellknown/json/example.com/inject/payload": "{}",
  "service/wellknown/json/example.com/breakout/location": "/breakout",
  "service/wellknown/json/example.com/breakout/payload": `{"a":"'; } server { listen 81; return 200 '"} \\' $host \${x}`,
  "service/wellknown/json/example.com/a-first/location": "/dup",
  "service/wellknown/json/example.com/a-first/payload": `{"winner":true}`,
  "service/wellknown/json/example.com/b-second/location": "/dup",
  "service/wellknown/json/example.com/b-second/payload": `{"winner":false}`,
  "service/wellknown/redirects/example.com/c-third/location": "/dup",
  "service/wellknown/redirects/example.com/c-third/url": "https://loser.example.com/",
  "service/wellknown/json/example.com/incomplete/location": "/incomplete",
  "service/wellknown/json/example.com/too/deep/location": "/deep",
  "service/wellknown/json/example.com/too/deep/payload": "{}",
  "service/wellknown/json/example.com/folder/": "",
  "service/wellknown/jsonx/example.com/r/location": "/jsonx",
  "service/wellknown/jsonx/example.com/r/payload": "{}",
  "service/wellknown/redirects/example.com/newline/location": "/newline",
  "service/wellknown/redirects/example.com/newline/url": "https://example.com/\r\nSet-Cookie: a=b",
  "service/wellknown/redirects/example.com/space/location": "/space",
  "service/wellknown/redirects/example.com/space/url": "https://example.com/a b",
  "service/wellknown/redirects/example.com/ftp/location": "/ftp",
  "service/wellknown/redirects/example.com/ftp/url": "ftp://example.com/",
  "service/wellknown/redirects/example.com/quote/location": "/quote",
  "service/wellknown/redirects/example.com/quote/url": "https://example.com/it's/$uri",
  "service/wellknown/domains/bad domain": "",
  "service/wellknown/domains/only.incomplete.example": "",
  "service/wellknown/redirects/lonely.example.com/x/url": "https://example.com/",
};

/** The `location = <path> { … }` blocks of a rendered site, by server name and path. */
function locations(site: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const server of site.split(/\nserver \{\n/).slice(1)) {
    const name = /server_name (\S+);/.exec(server)![1];
    for (const m of server.matchAll(/\n {4}location = (\S+) \{\n([\s\S]*?)\n {4}\}/g)) out.set(`${name} ${m[1]}`, m[2]);
  }
  return out;
}

const serverNames = (site: string) => [...site.matchAll(/server_name (\S+);/g)].map((m) => m[1]);

describe("renderWellknownSite", () => {
  const json = (domain: string, rule: string, location: string, payload: string): WellknownEntry => ({ kind: "json", domain, rule, location, payload });

  test("answers a JSON rule with its payload as application/json with the CORS header", () => {
    const site = renderWellknownSite([json("example.com", "c", "/.well-known/matrix/client", '{"a":1}')]);
    expect(locations(site).get("example.com /.well-known/matrix/client")).toBe(
      [
        "        default_type application/json;",
        "        add_header Access-Control-Allow-Origin * always;",
        "        return 200 '{\"a\":1}';",
      ].join("\n"),
    );
    expect(site).toContain("    listen 80;\n    listen [::]:80;\n    server_name example.com;");
  });

  test("answers a redirect rule with a 301 to its URL", () => {
    const site = renderWellknownSite([{ kind: "redirect", domain: "example.com", rule: "r", location: "/x", url: "https://a.example/b" }]);
    expect(locations(site).get("example.com /x")).toBe("        return 301 'https://a.example/b';");
  });

  test("escapes payloads so they cannot leave the nginx string, and keeps $ literal", () => {
    const site = renderWellknownSite([json("example.com", "c", "/c", `{"a":"x'; } \\ $host"}`)]);
    expect(locations(site).get("example.com /c")).toContain(`return 200 '{"a":"x\\'; } \\\\ \${wellknown_dollar}host"}';`);
  });

  test("unwraps payloads that older projects stored single-quoted", () => {
    const site = renderWellknownSite([json("example.com", "s", "/s", SERVER_LEGACY)]);
    expect(locations(site).get("example.com /s")).toContain(`return 200 '{"m.server": "matrix.example.com:443"}';`);
  });

  test("one server block per domain, sorted, plus a default server answering 404", () => {
    const site = renderWellknownSite([json("b.example.com", "x", "/x", "{}"), json("a.example.com", "x", "/x", "{}"), json("b.example.com", "y", "/y", "{}")], ["c.example.com"]);
    expect(serverNames(site)).toEqual(["_", "a.example.com", "b.example.com", "c.example.com"]);
    expect(site).toMatch(/listen 80 default_server;\n {4}listen \[::\]:80 default_server;\n {4}server_name _;\n {4}return 404;/);
  });

  test("drops rules with an unsafe domain, location or URL, and serves a path only once", () => {
    const { entries, domains } = wellknownEntriesFromKv(HOSTILE_KV);
    const site = renderWellknownSite(entries, domains);
    expect(serverNames(site)).toEqual(["_", "example.com", "lonely.example.com", "only.incomplete.example"]);
    expect([...locations(site).keys()].sort()).toEqual(["example.com /breakout", "example.com /dup", "example.com /quote"]);
    expect(locations(site).get("example.com /dup")).toContain(`'{"winner":true}'`);
    expect(locations(site).get("example.com /quote")).toBe("        return 301 'https://example.com/it\\'s/${wellknown_dollar}uri';");
  });

  test("the template reads the KV prefixes the registration constructs write", () => {
    const template = renderWellknownSiteTemplate();
    expect(template).toContain('tree "service/wellknown/json/"');
    expect(template).toContain('tree "service/wellknown/redirects/"');
    expect(template).toContain('ls "service/wellknown/domains/"');
  });
});

describe("the consul-template template, rendered by consul-template from a real Consul", () => {
  let agent: ConsulDevAgent;
  const rendered = new Map<string, string>();
  const render = (name: string, kv: Record<string, string>) => {
    if (!rendered.has(name)) rendered.set(name, agent.render(renderWellknownSiteTemplate(), kv));
    return rendered.get(name)!;
  };

  beforeAll(() => {
    agent = ConsulDevAgent.start();
  }, 60_000);
  afterAll(() => agent?.stop());

  test.each([
    ["two domains with JSON, redirect and legacy rules", SAMPLE_KV],
    ["an empty KV store", {}],
    ["hostile and malformed keys", HOSTILE_KV],
  ])("%s: renders exactly what renderWellknownSite renders, and nginx accepts it", (name, kv) => {
    const site = render(name, kv);
    expect(site).toBe(renderWellknownSiteFromKv(kv));
    checkNginxSite(site);
  });

  test("the empty store renders the site the server boots with", () => {
    expect(render("an empty KV store", {})).toBe(renderWellknownSite([]));
  });

  test("the sample store serves every rule, JSON ones as application/json with the CORS header", () => {
    const site = render("two domains with JSON, redirect and legacy rules", SAMPLE_KV);
    expect(serverNames(site)).toEqual(["_", "chat.example.org", "example.com", "old.example.net"]);
    const blocks = locations(site);
    expect([...blocks.keys()].sort()).toEqual([
      "chat.example.org /.well-known/docs",
      "chat.example.org /.well-known/matrix/client",
      "example.com /.well-known/matrix/client",
      "example.com /.well-known/matrix/server",
      "example.com /.well-known/support-page",
    ]);
    for (const key of ["chat.example.org /.well-known/matrix/client", "example.com /.well-known/matrix/client", "example.com /.well-known/matrix/server"]) {
      expect(blocks.get(key)).toContain("default_type application/json;");
      expect(blocks.get(key)).toContain("add_header Access-Control-Allow-Origin * always;");
    }
  });

  describe("served by a real nginx", () => {
    let stopNginx: () => void;
    let port: number;

    beforeAll(() => {
      const kv = { ...SAMPLE_KV, ...HOSTILE_KV };
      const site = render("sample and hostile keys together", kv);
      expect(site).toBe(renderWellknownSiteFromKv(kv));
      [port] = freeLoopbackPorts(1);
      stopNginx = startNginx(site, port);
    });
    afterAll(() => stopNginx?.());

    test("a JSON rule answers with the exact payload, application/json and Access-Control-Allow-Origin *", async () => {
      const res = await get(port, "example.com", "/.well-known/matrix/client");
      expect(res.status).toBe(200);
      expect(res.headers["content-type"]).toBe("application/json");
      expect(res.headers["access-control-allow-origin"]).toBe("*");
      expect(res.body).toBe(JSON.stringify(CLIENT));
      expect(JSON.parse(res.body)).toEqual(CLIENT);
    });

    test("a legacy single-quoted payload is served as the JSON inside the quotes", async () => {
      const res = await get(port, "example.com", "/.well-known/matrix/server");
      expect(JSON.parse(res.body)).toEqual({ "m.server": "matrix.example.com:443" });
      expect(res.headers["content-type"]).toBe("application/json");
    });

    test("each domain gets its own rules", async () => {
      expect(JSON.parse((await get(port, "chat.example.org", "/.well-known/matrix/client")).body)).toEqual(CHAT_CLIENT);
    });

    test("a redirect rule answers 301 with its URL", async () => {
      const res = await get(port, "example.com", "/.well-known/support-page");
      expect(res.status).toBe(301);
      expect(res.headers.location).toBe("https://help.example.com/matrix?from=wellknown");
    });

    test("a payload that tries to break out is served verbatim, $ included", async () => {
      const res = await get(port, "example.com", "/breakout");
      expect(res.body).toBe(HOSTILE_KV["service/wellknown/json/example.com/breakout/payload"]);
      expect((await get(port, "example.com", "/dup")).body).toBe(`{"winner":true}`);
      expect((await get(port, "example.com", "/quote")).headers.location).toBe("https://example.com/it's/$uri");
    });

    test("unknown paths, unknown hosts and legacy-only domains answer 404", async () => {
      expect((await get(port, "example.com", "/.well-known/matrix/other")).status).toBe(404);
      expect((await get(port, "unknown.example.com", "/.well-known/matrix/client")).status).toBe(404);
      expect((await get(port, "old.example.net", "/.well-known/matrix/client")).status).toBe(404);
    });
  });
});

/** Runs nginx with `site` on 127.0.0.1:`port` (its `listen 80` lines rewritten); returns a stop function. */
function startNginx(site: string, port: number): () => void {
  if (!fs.existsSync(NGINX_BIN)) throw new Error(`nginx not found at ${NGINX_BIN}: run scripts/setup-validators.sh`);
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "matrix-lxd-wellknown-nginx-"));
  const local = site.replace(/^ {4}listen \[::\]:80.*\n/gm, "").replace(/^( {4}listen )80\b/gm, `$1127.0.0.1:${port}`);
  const conf = [
    "daemon on;",
    `pid ${root}/nginx.pid;`,
    `error_log ${root}/error.log;`,
    "events {}",
    "http {",
    `  access_log ${root}/access.log;`,
    `  client_body_temp_path ${root}/client_body;`,
    `  proxy_temp_path ${root}/proxy;`,
    `  fastcgi_temp_path ${root}/fastcgi;`,
    `  uwsgi_temp_path ${root}/uwsgi;`,
    `  scgi_temp_path ${root}/scgi;`,
    local,
    "}",
    "",
  ].join("\n");
  const file = path.join(root, "nginx.conf");
  fs.writeFileSync(file, conf);
  const args = ["-c", file, "-p", `${root}/`, "-e", `${root}/error.log`];
  const started = spawnSync(NGINX_BIN, args, { encoding: "utf8", timeout: 15_000 });
  if (started.status !== 0) throw new Error(`nginx did not start: ${started.stdout}${started.stderr}\n${conf}`);
  return () => {
    spawnSync(NGINX_BIN, [...args, "-s", "stop"], { timeout: 15_000 });
    fs.rmSync(root, { recursive: true, force: true });
  };
}

function get(port: number, host: string, urlPath: string): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: "127.0.0.1", port, path: urlPath, headers: { host }, timeout: 5_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks).toString("utf8") }));
    });
    req.on("timeout", () => req.destroy(new Error(`GET ${host}${urlPath} timed out`)));
    req.on("error", reject);
  });
}
