import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { parse } from "yaml";
import {
  HomeserverOptions,
  MATRIX_ORG_APT,
  SYNAPSE_PATHS,
  renderConfDOverrides,
  renderHomeserverConfig,
  renderLogConfig,
  renderSecretsConfig,
  renderSynapseBootstrap,
  renderSynapseInstall,
  SYNAPSE_SECRET_SECTIONS,
  synapseFiles,
  synapseSecretFiles,
} from "../lib/render/synapse";
import { checkSynapseConfig, probeSynapseBlocklists, rewriteAbsolutePaths } from "./support/validators";

const MINIMAL: HomeserverOptions = {
  domain: "example.com",
  dualStack: true,
  database: { host: "10.10.1.13", port: 5432, database: "synapse", user: "synapse_user", password: "sample-db-password" },
  registrationSharedSecret: "sample-registration-secret",
  macaroonSecretKey: "sample-macaroon-key",
  formSecret: "sample-form-secret",
  turn: { domain: "turn.example.com", listeningPort: 3478, tlsListeningPort: 5349, sharedSecret: "sample-turn-secret" },
  adminEmail: "admin@example.com",
};

const WITH_SMTP: HomeserverOptions = {
  ...MINIMAL,
  smtp: { host: "smtp.example.com", port: 587, user: "mailer", password: `pa"ss\\word: #not-a-comment` },
};

/** What Synapse sees: homeserver.yaml, then the secrets fragment, merged key by key at the top level as Synapse merges them. */
const config = (options: HomeserverOptions) => ({ ...parse(renderHomeserverConfig(options)), ...parse(renderSecretsConfig(options)) });
const loaderFiles = { [SYNAPSE_PATHS.logConfig]: renderLogConfig() };
const secretsFragment = (options: HomeserverOptions) => ({ "secrets.yaml": renderSecretsConfig(options) });
const SAMPLE_SECRETS = ["sample-db-password", "sample-registration-secret", "sample-macaroon-key", "sample-form-secret", "sample-turn-secret", "sample-pepper", "not-a-comment"];

describe("homeserver.yaml and the secrets fragment", () => {
  const options: HomeserverOptions = { ...WITH_SMTP, passwordPepper: "sample-pepper" };

  test("homeserver.yaml holds no secret and no section that holds one", () => {
    const homeserver = renderHomeserverConfig(options);
    for (const value of SAMPLE_SECRETS) expect(homeserver).not.toContain(value);
    for (const key of SYNAPSE_SECRET_SECTIONS) expect(parse(homeserver)).not.toHaveProperty(key);
  });

  test("the fragment holds every secret, in exactly the sections that hold secrets", () => {
    const fragment = renderSecretsConfig(options);
    for (const value of SAMPLE_SECRETS) expect(fragment).toContain(value);
    expect(Object.keys(parse(fragment)).sort()).toEqual([...SYNAPSE_SECRET_SECTIONS].sort());
    // Without SMTP there is no email section to carry.
    expect(Object.keys(parse(renderSecretsConfig(MINIMAL)))).not.toContain("email");
  });

  test("are pushed as root-only files with the admin password verbatim", () => {
    const files = synapseSecretFiles(options, "Sample-Admin-Pass1 with 'quotes'");
    expect(files).toEqual([
      { name: "synapse-config", path: SYNAPSE_PATHS.secretsConfig, content: renderSecretsConfig(options) },
      { name: "admin-password", path: SYNAPSE_PATHS.adminPasswordFile, content: "Sample-Admin-Pass1 with 'quotes'" },
    ]);
  });
});

describe("renderHomeserverConfig", () => {
  test("serves example.com at https://matrix.example.com/ on port 8008 behind the proxy", () => {
    const doc = config(MINIMAL);
    expect(doc.server_name).toBe("example.com");
    expect(doc.public_baseurl).toBe("https://matrix.example.com/");
    expect(doc.listeners).toEqual([
      {
        port: 8008,
        tls: false,
        type: "http",
        x_forwarded: true,
        bind_addresses: ["::"],
        resources: [{ names: ["client", "federation"], compress: false }],
      },
    ]);
  });

  test("binds to 0.0.0.0 on IPv4-only hosts", () => {
    expect(config({ ...MINIMAL, dualStack: false }).listeners[0].bind_addresses).toEqual(["0.0.0.0"]);
  });

  test("keeps registration, guests, stats and metrics off", () => {
    const doc = config(MINIMAL);
    expect(doc).toMatchObject({ enable_registration: false, allow_guest_access: false, report_stats: false, enable_metrics: false });
    expect(doc.turn_allow_guests).toBe(false);
  });

  test("offers TURN over UDP and TCP, plain and TLS, with a one-hour credential lifetime", () => {
    const doc = config({ ...MINIMAL, turn: { ...MINIMAL.turn, listeningPort: 3479, tlsListeningPort: 5350 } });
    expect(doc.turn_uris).toEqual([
      "turn:turn.example.com:3479?transport=udp",
      "turn:turn.example.com:3479?transport=tcp",
      "turns:turn.example.com:5350?transport=udp",
      "turns:turn.example.com:5350?transport=tcp",
    ]);
    expect(doc.turn_shared_secret).toBe("sample-turn-secret");
    expect(doc.turn_user_lifetime).toBe("1h");
  });

  test("public room directory flags follow the options and default to private", () => {
    expect(config(MINIMAL)).toMatchObject({ allow_public_rooms_without_auth: false, allow_public_rooms_over_federation: false });
    expect(config({ ...MINIMAL, allowPublicRoomsWithoutAuth: true })).toMatchObject({
      allow_public_rooms_without_auth: true,
      allow_public_rooms_over_federation: false,
    });
    expect(config({ ...MINIMAL, allowPublicRoomsOverFederation: true })).toMatchObject({
      allow_public_rooms_without_auth: false,
      allow_public_rooms_over_federation: true,
    });
  });

  test("connects to PostgreSQL with psycopg2 and a bounded pool, over TLS with SCRAM bound to the TLS session", () => {
    expect(config(MINIMAL).database).toEqual({
      name: "psycopg2",
      txn_limit: 10000,
      args: {
        user: "synapse_user",
        password: "sample-db-password",
        database: "synapse",
        host: "10.10.1.13",
        port: 5432,
        sslmode: "require",
        channel_binding: "require",
        cp_min: 5,
        cp_max: 10,
      },
    });
  });

  test("federation requests refuse TLS older than 1.2", () => {
    expect(config(MINIMAL).federation_client_minimum_tls_version).toBe("1.2");
  });

  test("keeps media and the signing key on the data volume", () => {
    const doc = config(MINIMAL);
    expect(doc.media_store_path.startsWith(`${SYNAPSE_PATHS.dataDir}/`)).toBe(true);
    expect(doc.signing_key_path.startsWith(`${SYNAPSE_PATHS.dataDir}/`)).toBe(true);
  });

  test("has no email section without SMTP", () => {
    expect(config(MINIMAL)).not.toHaveProperty("email");
  });

  test("sends mail over STARTTLS by default, and over implicit TLS when asked", () => {
    expect(config(WITH_SMTP).email).toEqual({
      smtp_host: "smtp.example.com",
      smtp_port: 587,
      smtp_user: "mailer",
      smtp_pass: `pa"ss\\word: #not-a-comment`,
      force_tls: false,
      require_transport_security: true,
      enable_tls: true,
      notif_from: "Your %(app)s homeserver <noreply@example.com>",
      app_name: "example.com",
      client_base_url: "https://element.example.com",
      validation_token_lifetime: "15m",
    });
    const implicit = config({ ...MINIMAL, smtp: { host: "smtp.example.com", port: 465, implicitTls: true } }).email;
    expect(implicit).toMatchObject({ force_tls: true, enable_tls: true, require_transport_security: false });
    expect(implicit).not.toHaveProperty("smtp_pass");
  });

  test("secrets with YAML-hostile characters survive intact", () => {
    const hostile = `"quoted" \\ back: #hash 'single' <b>&\u00e9`;
    const doc = config({ ...MINIMAL, registrationSharedSecret: hostile, passwordPepper: hostile });
    expect(doc.registration_shared_secret).toBe(hostile);
    expect(doc.password_config.pepper).toBe(hostile);
  });

  test("runs apply-time values through the quote function and nothing else", () => {
    const doc = config({ ...MINIMAL, quote: (v) => JSON.stringify(`q(${v})`) });
    expect(doc.registration_shared_secret).toBe("q(sample-registration-secret)");
    expect(doc.macaroon_secret_key).toBe("q(sample-macaroon-key)");
    expect(doc.form_secret).toBe("q(sample-form-secret)");
    expect(doc.turn_shared_secret).toBe("q(sample-turn-secret)");
    expect(doc.database.args).toMatchObject({ password: "q(sample-db-password)", host: "q(10.10.1.13)", port: 5432 });
    expect(doc.server_name).toBe("example.com");
  });

  test("enforces Synapse's password policy and leaves the pepper out unless given", () => {
    const doc = config(MINIMAL);
    expect(doc.password_config).toEqual({
      enabled: true,
      policy: { enabled: true, minimum_length: 12, require_digit: true, require_symbol: false, require_lowercase: true, require_uppercase: true },
    });
  });

  test("never fetches URL previews from private, loopback, link-local or CGNAT addresses", () => {
    const doc = config(MINIMAL);
    expect(doc.url_preview_enabled).toBe(true);
    expect(doc.url_preview_ip_range_blacklist).toEqual(
      expect.arrayContaining(["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "127.0.0.0/8", "169.254.0.0/16", "100.64.0.0/10", "::1/128", "fe80::/10", "fc00::/7", "::ffff:0:0/96"]),
    );
    expect(doc.url_preview_url_blacklist).toContainEqual({ username: "*" });
  });

  test("matches ryo's privacy and federation settings", () => {
    expect(config({ ...MINIMAL, roomComplexity: 10 })).toMatchObject({
      admin_contact: "mailto:admin@example.com",
      presence: { enabled: false },
      require_auth_for_profile_requests: true,
      include_profile_data_on_invite: false,
      allow_profile_lookup_over_federation: false,
      limit_remote_rooms: { enabled: true, complexity: 10, admins_can_join: true },
      trusted_key_servers: [{ server_name: "matrix.org" }],
      suppress_key_server_warning: true,
      push: { include_content: false },
      encryption_enabled_by_default_for_room_type: "invite",
      user_directory: { enabled: true },
      server_notices: { system_mxid_localpart: "notices" },
    });
  });
});

describe("Synapse's own config loader accepts", () => {
  test("the minimal dual-stack configuration", () => {
    const out = checkSynapseConfig(renderHomeserverConfig(MINIMAL), loaderFiles, secretsFragment(MINIMAL));
    expect(out).toMatch(/config OK \(server_name=example\.com, listeners=1, databases=psycopg2\)/);
    expect(out).toContain("secrets set: form_secret macaroon_secret_key registration_shared_secret turn_shared_secret\n");
  });

  test("the configuration with SMTP and a hostile password", () => {
    const out = checkSynapseConfig(renderHomeserverConfig(WITH_SMTP), loaderFiles, secretsFragment(WITH_SMTP));
    expect(out).toMatch(/config OK .*databases=psycopg2/);
    expect(out).toContain("secrets set: form_secret macaroon_secret_key registration_shared_secret smtp_pass turn_shared_secret\n");
  });

  test("the IPv4-only configuration with a pepper and public rooms", () => {
    const options = { ...MINIMAL, dualStack: false, passwordPepper: "sample-pepper", allowPublicRoomsWithoutAuth: true, allowPublicRoomsOverFederation: true };
    const out = checkSynapseConfig(renderHomeserverConfig(options), loaderFiles, secretsFragment(options));
    expect(out).toMatch(/config OK .*databases=psycopg2/);
    expect(out).toContain("secrets set: form_secret macaroon_secret_key password_pepper registration_shared_secret turn_shared_secret\n");
  });

  test("but not homeserver.yaml alone: the fragment carries the database and the secrets", () => {
    expect(() => checkSynapseConfig(renderHomeserverConfig(MINIMAL), loaderFiles, {})).toThrow(/Config is missing macaroon_secret_key[\s\S]*No database config provided/);
  });
});

describe("Synapse's own address and URL checks", () => {
  // 93.184.215.14 / 2606:2800:21f:cb07:6820:80da:af6b:8b2c stand in for the host's public addresses.
  const options = { ...MINIMAL, hostPublicAddresses: ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"] };
  const blockedIps = [
    "0.1.2.3", // 0/8 ("this network"; 0.0.0.0 reaches loopback on Linux)
    "240.0.0.1", // 240/4, reserved
    "255.255.255.255",
    "10.10.1.1", // the container network
    "64:ff9b::a0a:101", // NAT64 of 10.10.1.1
    "64:ff9b:1::a0a:101", // local-use NAT64
    "2001:0:a0a:101::1", // Teredo
    "2002:a0a:101::1", // 6to4 of 10.10.1.1
    "::ffff:10.10.1.1", // IPv4-mapped
    "93.184.215.14", // the host's public IPv4
    "2606:2800:21f:cb07:6820:80da:af6b:8b2c", // the host's public IPv6
  ];
  const publicIps = ["93.184.215.15", "2606:2800:21f:cb07:6820:80da:af6b:8b2d", "1.1.1.1"];
  const blockedUrls = [
    "https://93.184.215.15/",
    "https://93.184.215.15:443/",
    "https://93.184.215.15:8448/x",
    "https://[2606:4700::1111]/",
    "https://[2606:4700::1111]:443/",
    "https://2130706433/", // 127.0.0.1 as one number
    "https://user@example.com/",
    "http://example.com/",
    "https://www.google.com:443/",
  ];
  let result: ReturnType<typeof probeSynapseBlocklists>;
  beforeAll(() => {
    result = probeSynapseBlocklists(renderHomeserverConfig(options), { ips: [...blockedIps, ...publicIps], urls: [...blockedUrls, "https://example.com/page"] }, loaderFiles, secretsFragment(options));
  });

  test.each(blockedIps)("refuse outbound requests and URL previews to %s", (ip) => {
    expect([ip, result.outbound[ip], result.preview[ip]]).toEqual([ip, true, true]);
  });

  test.each(publicIps)("still reach the public address %s", (ip) => {
    expect([ip, result.outbound[ip], result.preview[ip]]).toEqual([ip, false, false]);
  });

  test.each(blockedUrls)("refuse to preview %s by pattern, explicit port or not", (url) => {
    expect([url, result.urls[url]]).toEqual([url, true]);
  });

  test("still preview an ordinary https URL", () => {
    expect(result.urls["https://example.com/page"]).toBe(false);
  });
});

describe("rendered files", () => {
  const files = synapseFiles({
    homeserver: WITH_SMTP,
    bootstrap: { adminUser: "admin", dualStack: true },
    packageVersion: "1.163.2+bookworm1",
  });

  test("contain no Terraform template sequences that Terraform would try to evaluate", () => {
    for (const file of files) {
      expect({ path: file.path, offending: file.content.match(/[$%]\{/g) }).toEqual({ path: file.path, offending: null });
    }
  });

  test("stage the configuration root-only, without the secrets (pushed separately)", () => {
    const secret = files.filter((f) => f.path.startsWith(`${SYNAPSE_PATHS.stagingDir}/`));
    expect(secret.map((f) => f.path).sort()).toEqual(
      [
        `${SYNAPSE_PATHS.stagingDir}/conf.d/report_stats.yaml`,
        `${SYNAPSE_PATHS.stagingDir}/conf.d/server_name.yaml`,
        `${SYNAPSE_PATHS.stagingDir}/homeserver.yaml`,
        `${SYNAPSE_PATHS.stagingDir}/log.yaml`,
      ].sort(),
    );
    for (const f of secret) expect(f.permissions).toBe("0600");
    for (const f of files) for (const value of SAMPLE_SECRETS) expect({ path: f.path, holds: f.content.includes(value) }).toEqual({ path: f.path, holds: false });
  });

  test("pin conf.d's server_name and report_stats to homeserver.yaml's", () => {
    const { serverName, reportStats } = renderConfDOverrides("example.com");
    expect(parse(serverName)).toEqual({ server_name: "example.com" });
    expect(parse(reportStats)).toEqual({ report_stats: false });
  });

  test("log to stderr (the journal) without SQL debug logging", () => {
    const log = parse(renderLogConfig());
    expect(log.root).toEqual({ level: "INFO", handlers: ["console"] });
    expect(log.handlers.console.class).toBe("logging.StreamHandler");
    expect(log.loggers["synapse.storage.SQL"].level).toBe("INFO");
  });

  test("are valid bash", () => {
    for (const script of [renderSynapseBootstrap({ adminUser: "admin", dualStack: false }), renderSynapseInstall("1.163.2+bookworm1")]) {
      const r = spawnSync("bash", ["-n"], { input: script, encoding: "utf8" });
      expect(r.stderr).toBe("");
      expect(r.status).toBe(0);
    }
  });

  test("install exactly the pinned package from the repository whose key fingerprint matches", () => {
    const script = renderSynapseInstall("1.163.2+bookworm1");
    expect(script).toContain(`if [ "$fingerprints" != "${MATRIX_ORG_APT.keyFingerprint}" ]; then`);
    expect(script).toContain("apt-get install -y -q --no-install-recommends matrix-synapse-py3=1.163.2+bookworm1");
    expect(script).toMatch(/signed-by=\/etc\/apt\/keyrings\/matrix-org-archive-keyring\.gpg\] \S+ bookworm main/);
    // The package must not start Synapse with its own configuration.
    expect(script.indexOf("policy-rc.d")).toBeLessThan(script.indexOf("apt-get install"));
  });
});

/**
 * Runs the real bootstrap script in a temporary root, with systemctl, runuser, id, chown,
 * install and Synapse's venv replaced by stubs that record what they were asked to do.
 */
describe("the bootstrap script", () => {
  const ADMIN_PASSWORD = "Sample-Admin-Pass1 with 'quotes' and $dollars";
  let root: string;

  beforeEach(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), "synapse-bootstrap-"));
  });
  afterEach(() => fs.rmSync(root, { recursive: true, force: true }));

  const at = (p: string) => path.join(root, p);
  const write = (p: string, content: string, mode = 0o644) => {
    fs.mkdirSync(path.dirname(at(p)), { recursive: true });
    fs.writeFileSync(at(p), content, { mode });
  };
  const calls = () => (fs.existsSync(at("calls.log")) ? fs.readFileSync(at("calls.log"), "utf8").trim().split("\n") : []);

  /** A fresh container: staging files from cloud-init, the Debian package's stubs. */
  function freshContainer(databaseAnswersOnAttempt: number, secretsDelivered = true): void {
    const p = SYNAPSE_PATHS;
    write(`${p.stagingDir}/homeserver.yaml`, renderHomeserverConfig(MINIMAL), 0o600);
    write(`${p.stagingDir}/log.yaml`, renderLogConfig(), 0o600);
    const overrides = renderConfDOverrides("example.com");
    write(`${p.stagingDir}/conf.d/server_name.yaml`, overrides.serverName, 0o600);
    write(`${p.stagingDir}/conf.d/report_stats.yaml`, overrides.reportStats, 0o600);
    if (secretsDelivered) {
      write(p.secretsConfig, renderSecretsConfig(MINIMAL), 0o600);
      write(p.adminPasswordFile, ADMIN_PASSWORD, 0o600);
    }
    fs.mkdirSync(at(p.dataDir), { recursive: true });
    const record = `echo "$(basename "$0") $*" >> ${at("calls.log")}`;
    const stub = (name: string, body: string) => write(`stubs/${name}`, `#!/bin/bash\n${body}\n`, 0o755);
    stub("id", `case "$1" in -u) echo 64999;; -gn) echo synapse-group;; *) exit 0;; esac`);
    stub("chown", record);
    stub("runuser", `${record}\necho "ed25519 a_key sample" > ${at(p.signingKey)}`);
    stub("systemctl", `${record}\n[ "$1" = is-active ] && exit 3\nexit 0`);
    // Drops -o/-g (no such user here), keeps everything else.
    stub("install", `args=(); while [ $# -gt 0 ]; do case "$1" in -o|-g) shift 2;; *) args+=("$1"); shift;; esac; done\nexec /usr/bin/install "\${args[@]}"`);
    const venv = `${p.venv}/bin`;
    write(
      `${venv}/python`,
      `#!/bin/bash
if [ "$1" = - ]; then
  n=$(( $(cat ${at("db-attempts")} 2>/dev/null || echo 0) + 1 )); echo $n > ${at("db-attempts")}
  [ $n -ge ${databaseAnswersOnAttempt} ] || { echo "connection refused"; exit 1; }
fi
exit 0`,
      0o755,
    );
    write(
      `${venv}/register_new_matrix_user`,
      `#!/bin/bash\n${record}\nwhile [ $# -gt 0 ]; do [ "$1" = --password-file ] && cp "$2" ${at("registered-password")}; shift; done`,
      0o755,
    );
  }

  function runBootstrap(options: { databaseTimeoutSeconds?: number; secretsTimeoutSeconds?: number } = {}) {
    const p = SYNAPSE_PATHS;
    const script = rewriteAbsolutePaths(
      renderSynapseBootstrap({ adminUser: "admin", dualStack: true, retryIntervalSeconds: 0, healthTimeoutSeconds: 5, databaseTimeoutSeconds: 5, secretsTimeoutSeconds: 5, ...options }),
      [p.stagingDir, p.configDir, p.dataDir, p.venv],
      root,
    );
    write("bootstrap.sh", script, 0o755);
    return spawnSync("bash", [at("bootstrap.sh")], {
      encoding: "utf8",
      env: { ...process.env, PATH: `${at("stubs")}:${process.env.PATH}` },
      timeout: 20_000,
    });
  }

  test("installs the configuration, makes the key, waits for the database, starts Synapse and creates the admin once", () => {
    freshContainer(3);
    const first = runBootstrap();
    expect(first.stderr).toBe("");
    expect(first.status).toBe(0);
    expect(first.stdout).toMatch(/waiting for the database \(\d+ of 5 seconds\)/);
    expect(fs.readFileSync(at("db-attempts"), "utf8").trim()).toBe("3");
    expect(fs.readFileSync(at(SYNAPSE_PATHS.homeserverConfig), "utf8")).toBe(renderHomeserverConfig(MINIMAL));
    expect(fs.statSync(at(SYNAPSE_PATHS.homeserverConfig)).mode & 0o777).toBe(0o640);
    const installedSecrets = at(`${SYNAPSE_PATHS.configDir}/conf.d/secrets.yaml`);
    expect(fs.readFileSync(installedSecrets, "utf8")).toBe(renderSecretsConfig(MINIMAL));
    expect(fs.statSync(installedSecrets).mode & 0o777).toBe(0o640);
    expect(calls()).toEqual([
      `chown -R matrix-synapse:synapse-group ${at(SYNAPSE_PATHS.dataDir)}`,
      expect.stringMatching(/^runuser -u matrix-synapse -- \S+\/python -m synapse\.app\.homeserver .* --generate-keys$/),
      "systemctl enable matrix-synapse.service",
      "systemctl is-active --quiet matrix-synapse.service",
      "systemctl start matrix-synapse.service",
      `register_new_matrix_user --config ${installedSecrets} --user admin --password-file ${at(SYNAPSE_PATHS.adminPasswordFile)} --admin --exists-ok http://[::1]:8008`,
    ]);
    expect(fs.readFileSync(at("registered-password"), "utf8")).toBe(ADMIN_PASSWORD);
    expect(fs.existsSync(at(SYNAPSE_PATHS.adminMarker))).toBe(true);
    // Left where Terraform put it (root-only): deleting it would make every plan push it again.
    expect(fs.statSync(at(SYNAPSE_PATHS.adminPasswordFile)).mode & 0o777).toBe(0o600);

    // A replacement container on the same data volume: no new key, no second admin.
    fs.rmSync(at("calls.log"));
    freshContainer(1);
    const second = runBootstrap();
    expect(second.status).toBe(0);
    expect(calls().filter((c) => /^(runuser|register_new_matrix_user)/.test(c))).toEqual([]);
  });

  test("waits for the secret files Terraform pushes and gives up with a message naming the missing one", () => {
    freshContainer(1, false);
    const result = runBootstrap({ secretsTimeoutSeconds: 0 });
    expect(result.status).not.toBe(0);
    expect(result.stdout).toContain(
      `gave up waiting for the secrets file ${at(SYNAPSE_PATHS.secretsConfig)} after 0 seconds: ${at(SYNAPSE_PATHS.secretsConfig)} is missing: Terraform pushes it`,
    );
    expect(calls()).toEqual([]);
    expect(fs.existsSync(at(SYNAPSE_PATHS.homeserverConfig))).toBe(false);
  });

  test("gives up on a database that never answers, without starting Synapse", () => {
    freshContainer(Number.MAX_SAFE_INTEGER);
    const result = runBootstrap({ databaseTimeoutSeconds: 0 });
    expect(result.status).not.toBe(0);
    expect(result.stdout).toContain("gave up waiting for the database after 0 seconds: connection refused");
    expect(calls().filter((c) => c.startsWith("systemctl"))).toEqual([]);
  });
});
