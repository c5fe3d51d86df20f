/**
 * Proves that each validator in test/support/validators.ts accepts a minimal
 * valid document and rejects a broken one (so the checks can really fail).
 * Needs the tools from scripts/setup-validators.sh.
 */
import {
  SELF_SIGNED_PEM,
  checkCloudInit,
  checkHaproxy,
  checkNftables,
  checkNginxSite,
  checkSynapseConfig,
  rewriteAbsolutePaths,
} from "./support/validators";

describe("rewriteAbsolutePaths", () => {
  it("rewrites whole path prefixes only", () => {
    const text = [
      "bind :443 ssl crt /etc/haproxy/ssl/",
      "crt /etc/haproxy/ssl",
      'x "/etc/haproxy/ssl/a.pem"',
      "keep /etc/haproxy/sslx /opt/etc/haproxy/ssl",
    ].join("\n");
    expect(rewriteAbsolutePaths(text, ["/etc/haproxy/ssl/", "/etc/haproxy"], "/R")).toBe(
      [
        "bind :443 ssl crt /R/etc/haproxy/ssl/",
        "crt /R/etc/haproxy/ssl",
        'x "/R/etc/haproxy/ssl/a.pem"',
        "keep /R/etc/haproxy/sslx /opt/etc/haproxy/ssl",
      ].join("\n"),
    );
  });
});

describe("checkCloudInit", () => {
  it("accepts a valid cloud-config", () => {
    const out = checkCloudInit(
      [
        "#cloud-config",
        "packages: [haproxy]",
        "write_files:",
        "  - path: /etc/haproxy/haproxy.cfg",
        "    content: |",
        "      global",
        "    permissions: '0644'",
        "runcmd:",
        "  - [systemctl, restart, haproxy]",
        "",
      ].join("\n"),
    );
    expect(out).toMatch(/Valid cloud-config/);
  });

  it("rejects a wrongly typed key", () => {
    expect(() => checkCloudInit("#cloud-config\npackages: 5\n")).toThrow(/packages: 5 is not of type 'array'/);
  });

  it("rejects a document without the #cloud-config header", () => {
    expect(() => checkCloudInit("packages: [haproxy]\n")).toThrow(/#cloud-config/);
  });
});

describe("checkHaproxy", () => {
  const files = {
    "/etc/haproxy/ssl/default.pem": SELF_SIGNED_PEM,
    "/etc/haproxy/errors/503.http":
      "HTTP/1.0 503 Service Unavailable\r\nContent-Type: text/plain\r\n\r\nunavailable\n",
  };
  const config = (timeout: string) =>
    [
      "global",
      "  log stdout format raw local0",
      "defaults",
      "  mode http",
      "  timeout connect 5s",
      "  timeout client 30s",
      `  ${timeout}`,
      "  errorfile 503 /etc/haproxy/errors/503.http",
      "frontend https",
      "  bind :8443 ssl crt /etc/haproxy/ssl/",
      "  default_backend synapse",
      "backend synapse",
      "  server s1 127.0.0.1:8008 check",
      "",
    ].join("\n");

  it("accepts a valid config with a crt directory and error file mapped", () => {
    expect(checkHaproxy(config("timeout server 30s"), files)).toMatch(/Configuration file is valid/);
  });

  it("rejects an unknown keyword", () => {
    expect(() => checkHaproxy(config("timeout bogus 30s"), files)).toThrow(/got 'bogus'/);
  });

  it("rejects an empty crt directory", () => {
    expect(() => checkHaproxy(config("timeout server 30s"), { "/etc/haproxy/ssl/README": "" })).toThrow(
      /rejected haproxy\.cfg/,
    );
  });
});

describe("checkNginxSite", () => {
  const site = (directive: string) =>
    [
      "server {",
      "  listen 8080;",
      "  server_name element.example.org;",
      "  root /var/www/element;",
      "  location /_matrix {",
      `    ${directive} http://127.0.0.1:8008;`,
      "  }",
      "}",
    ].join("\n");

  it("accepts a valid server block", () => {
    expect(checkNginxSite(site("proxy_pass"))).toMatch(/test is successful/);
  });

  it("rejects an unknown directive", () => {
    expect(() => checkNginxSite(site("proxy_passs"))).toThrow(/unknown directive "proxy_passs"/);
  });
});

describe("checkNftables", () => {
  const ruleset = (verdict: string) =>
    [
      "flush ruleset",
      "table inet filter {",
      "  chain input {",
      "    type filter hook input priority 0; policy drop;",
      "    ct state established,related accept",
      "    iifname lo accept",
      `    tcp dport { 22, 443, 8448 } ${verdict}`,
      "  }",
      "}",
      "",
    ].join("\n");

  it("accepts a valid ruleset", () => {
    expect(() => checkNftables(ruleset("accept"))).not.toThrow();
  });

  it("rejects a syntax error", () => {
    expect(() => checkNftables(ruleset("acept"))).toThrow(/syntax error/);
  });

  it("rejects a jump to a missing chain (kernel-side check)", () => {
    expect(() => checkNftables(ruleset("jump nosuchchain"))).toThrow(/No such file or directory/);
  });
});

describe("checkSynapseConfig", () => {
  const homeserver = (database: string, listeners?: string) =>
    [
      "server_name: example.org",
      "public_baseurl: https://matrix.example.org/",
      "pid_file: /run/matrix-synapse/homeserver.pid",
      "report_stats: false",
      "log_config: /etc/matrix-synapse/log.yaml",
      "signing_key_path: /etc/matrix-synapse/homeserver.signing.key",
      "media_store_path: /var/lib/matrix-synapse/media",
      "macaroon_secret_key: not-a-secret",
      "trusted_key_servers: [{server_name: matrix.org}]",
      "suppress_key_server_warning: true",
      listeners ??
        [
          "listeners:",
          "  - port: 8008",
          "    type: http",
          "    tls: false",
          "    x_forwarded: true",
          "    bind_addresses: ['::']",
          "    resources: [{names: [client, federation], compress: false}]",
        ].join("\n"),
      database,
      "",
    ].join("\n");
  const postgres = [
    "database:",
    "  name: psycopg2",
    "  args:",
    "    user: synapse",
    "    password: secret",
    "    database: synapse",
    "    host: /run/postgresql",
    "    cp_min: 5",
    "    cp_max: 10",
  ].join("\n");
  const logConfig = {
    "/etc/matrix-synapse/log.yaml": [
      "version: 1",
      "formatters:",
      "  precise: {format: '%(asctime)s - %(name)s - %(levelname)s - %(message)s'}",
      "handlers:",
      "  file:",
      "    class: logging.FileHandler",
      "    formatter: precise",
      "    filename: /var/log/matrix-synapse/homeserver.log",
      "root: {level: INFO, handlers: [file]}",
      "disable_existing_loggers: false",
      "",
    ].join("\n"),
  };

  it("accepts a valid homeserver.yaml with a psycopg2 database", () => {
    const out = checkSynapseConfig(homeserver(postgres), logConfig);
    expect(out).toMatch(/config OK \(server_name=example\.org, listeners=1, databases=psycopg2\)/);
  });

  it("rejects an unknown database engine", () => {
    expect(() => checkSynapseConfig(homeserver("database: {name: nosuchdb}"), logConfig)).toThrow(
      /Unsupported database type 'nosuchdb'/,
    );
  });

  it("rejects listeners that are not a list", () => {
    expect(() => checkSynapseConfig(homeserver(postgres, "listeners: 5"), logConfig)).toThrow(
      /Error in configuration at 'listeners':\s+Expected a list/,
    );
  });
});
