/**
 * coturn's rendered configuration, run by the REAL turnserver on loopback: the template rendered
 * by the real consul-template against a real `consul agent -dev`, the TLS certificate chosen by
 * the real coturn-prepare script (run by sh in a temporary root), and the fallback certificate
 * made by the ingress proxy's own script. A small TURN client allocates relays with REST API
 * credentials derived from the shared secret and asks for permissions only: no data is sent to
 * any peer.
 */
import { spawn, spawnSync, ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as tls from "node:tls";
import {
  COTURN_CONFIG_PATH,
  COTURN_RENDERED_PATH,
  COTURN_SECRET_PATH,
  DENIED_PEER_NETWORKS,
  parseCidr,
  renderCoturnPrepareScript,
  renderStaticAuthSecret,
  renderTurnserverTemplate,
  TurnserverOptions,
} from "../lib/render/turnserver";
import { renderFallbackCertScript } from "../lib/render/certbot";
import { kvPaths } from "../lib/kv";
import { ConsulDevAgent, freeLoopbackPorts } from "./support/consul-template-render";
import { rewriteAbsolutePaths, selfSignedCertificate } from "./support/validators";
import { TurnClient, TurnAnswer, restCredentials } from "./support/turn-client";

const TURNSERVER_BIN = "/usr/bin/turnserver";
const SECRET = "coturn-test-shared-secret";
const HOST_NETWORKS = ["10.10.1.0/24", "fd10:10:10:1::1:0/112"];
// The host's public addresses: ordinary Internet addresses, which only this denial keeps out.
// (Permission requests only: nothing is ever sent to them.)
const EXTERNAL_IPV4 = "5.6.7.9";
const HOST_ADDRESSES = ["5.6.7.8", "2a01:4f8:1:2::3"];
// Paths of the rendered files that move into the temporary root.
const MOVED = ["/etc/coturn", "/run", "/var/certs", "/etc/haproxy/ssl"];

const [listeningPort, tlsListeningPort] = freeLoopbackPorts(2);
const minPort = 40000 + (process.pid % 200) * 100;
const OPTIONS: TurnserverOptions = {
  ipv4: "127.0.0.1",
  ipv6: "::1",
  externalIpv4: EXTERNAL_IPV4,
  hostAddresses: HOST_ADDRESSES,
  defaults: { listeningPort: 3478, tlsListeningPort: 5349, minPort: 50000, maxPort: 51000 },
  deniedNetworks: HOST_NETWORKS,
};
const PORTS_KV = {
  [kvPaths.coturnPort("listening-port")]: String(listeningPort),
  [kvPaths.coturnPort("tls-listening-port")]: String(tlsListeningPort),
  [kvPaths.coturnPort("min-port")]: String(minPort),
  [kvPaths.coturnPort("max-port")]: String(minPort + 99),
};

/** A temporary root with stand-ins for chown, systemctl and runuser (their calls are logged). */
class Sandbox {
  readonly root = fs.mkdtempSync(path.join(os.tmpdir(), "matrix-lxd-coturn-"));
  private readonly bin = path.join(this.root, "bin");
  constructor() {
    fs.mkdirSync(this.bin);
    // runuser: the check that turnserver can read its configuration; the sandbox has no such user.
    for (const tool of ["chown", "systemctl", "runuser"]) fs.writeFileSync(path.join(this.bin, tool), `#!/bin/sh\necho "${tool} $*" >> ${this.root}/calls.log\n`, { mode: 0o755 });
    for (const dir of MOVED) fs.mkdirSync(path.join(this.root, dir), { recursive: true });
  }
  at(p: string): string {
    return path.join(this.root, p);
  }
  move(text: string): string {
    return rewriteAbsolutePaths(text, MOVED, this.root);
  }
  /** Runs a rendered script (paths moved into the root) with the stand-ins first on PATH. */
  run(script: string, args: string[] = []) {
    const file = path.join(this.root, `script-${Math.random().toString(36).slice(2)}.sh`);
    fs.writeFileSync(file, this.move(script), { mode: 0o755 });
    const r = spawnSync("sh", [file, ...args], { encoding: "utf8", env: { ...process.env, PATH: `${this.bin}:${process.env.PATH}` } });
    if (r.status !== 0) throw new Error(`${script.split("\n")[1]} ${args.join(" ")} failed (${r.status}):\n${r.stdout}${r.stderr}`);
    return r;
  }
  calls(): string {
    return fs.existsSync(this.at("calls.log")) ? fs.readFileSync(this.at("calls.log"), "utf8") : "";
  }
  cleanup(): void {
    fs.rmSync(this.root, { recursive: true, force: true });
  }
}

/** A self-signed certificate and key for `name`, as the deploy hook writes them to the shared volume. */
function issueDomainCertificate(sandbox: Sandbox, name: string): void {
  const { certificate, key } = selfSignedCertificate(name);
  fs.writeFileSync(sandbox.at(`/var/certs/${name}.fullchain.pem`), certificate);
  fs.writeFileSync(sandbox.at(`/var/certs/${name}.key.pem`), key, { mode: 0o640 });
}

/** turnserver with the configuration at COTURN_CONFIG_PATH in the sandbox, as the drop-in runs it. */
async function startTurnserver(sandbox: Sandbox): Promise<{ child: ChildProcess; log: () => string; stop: () => Promise<void> }> {
  fs.accessSync(TURNSERVER_BIN, fs.constants.X_OK);
  let output = "";
  const child = spawn(TURNSERVER_BIN, ["-c", sandbox.at(COTURN_CONFIG_PATH), `--pidfile=${sandbox.at("/run/turnserver.pid")}`, `--db=${sandbox.at("/turndb")}`, "--log-file=stdout", "--verbose"], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  child.stdout?.on("data", (d) => (output += d));
  child.stderr?.on("data", (d) => (output += d));
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM");
      await exited;
    }
  };
  // Ready when the TLS listener completes a handshake (it starts after the plain listeners).
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`turnserver exited (${child.exitCode}):\n${output}`);
    if (await tlsPeer(tlsListeningPort).then(() => true, () => false)) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`turnserver's TLS listener did not answer within 15 s:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { child, log: () => output, stop };
}

function tlsPeer(port: number, servername = "turn.example.com"): Promise<tls.PeerCertificate> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: "127.0.0.1", port, servername, rejectUnauthorized: false, timeout: 2000 }, () => {
      const peer = socket.getPeerCertificate();
      socket.end();
      resolve(peer);
    });
    socket.on("error", reject).on("timeout", () => socket.destroy(new Error("TLS handshake timed out")));
  });
}

/** The first, a middle and the last address of each range (the unspecified address included). */
function sampleAddresses(cidr: string): string[] {
  const { first, last, format } = parseCidr(cidr);
  return [...new Set([first, first + (last - first) / 2n, last].map(format))];
}

let agent: ConsulDevAgent;
beforeAll(() => {
  agent = ConsulDevAgent.start();
}, 60_000);
afterAll(() => agent?.stop());

/**
 * Renders the template for `kv` (ports always from PORTS_KV) into the sandbox, puts the secret
 * line where Terraform pushes it, and runs `coturn-prepare start`.
 */
function prepare(sandbox: Sandbox, kv: Record<string, string> = {}, options: TurnserverOptions = OPTIONS): string {
  const conf = agent.render(renderTurnserverTemplate(options), { ...PORTS_KV, ...kv });
  fs.writeFileSync(sandbox.at(COTURN_RENDERED_PATH), sandbox.move(conf));
  fs.writeFileSync(sandbox.at(COTURN_SECRET_PATH), renderStaticAuthSecret(SECRET), { mode: 0o600 });
  sandbox.run(renderCoturnPrepareScript(), ["start"]);
  return conf;
}

describe("a real turnserver with the rendered configuration", () => {
  let sandbox: Sandbox;
  let server: Awaited<ReturnType<typeof startTurnserver>>;
  const clients: TurnClient[] = [];

  async function allocation(family: "ipv4" | "ipv6"): Promise<TurnClient> {
    const client = await TurnClient.connect("127.0.0.1", listeningPort);
    clients.push(client);
    const { username, password } = restCredentials(SECRET);
    const answer = await client.allocate(username, password, family);
    if (!answer.ok) throw new Error(`Allocate (${family}) failed: ${answer.code} ${answer.reason}\n${server.log()}`);
    return client;
  }

  beforeAll(async () => {
    sandbox = new Sandbox();
    sandbox.run(renderFallbackCertScript());
    prepare(sandbox);
    server = await startTurnserver(sandbox);
  }, 60_000);

  afterAll(async () => {
    for (const c of clients) await c.close();
    await server?.stop();
    sandbox?.cleanup();
  });

  test("refuses an allocation with a wrong password", async () => {
    const client = await TurnClient.connect("127.0.0.1", listeningPort);
    clients.push(client);
    const { username } = restCredentials(SECRET);
    const answer = await client.allocate(username, restCredentials("another-secret").password);
    expect(answer).toMatchObject({ ok: false, code: 401 });
  });

  test("reads the secret coturn-prepare appended: the configuration it runs with is root's and its group's only", () => {
    expect(fs.readFileSync(sandbox.at(COTURN_RENDERED_PATH), "utf8")).not.toContain(SECRET);
    expect(fs.readFileSync(sandbox.at(COTURN_CONFIG_PATH), "utf8")).toContain(`\nstatic-auth-secret=${SECRET}\n`);
    expect(fs.statSync(sandbox.at(COTURN_CONFIG_PATH)).mode & 0o777).toBe(0o640);
    expect(sandbox.calls()).toContain(`chown root:turnserver ${sandbox.at(COTURN_CONFIG_PATH)}.new`);
  });

  test("refuses the host's own public addresses as peers, and permits their neighbours", async () => {
    const v4 = await allocation("ipv4");
    const v6 = await allocation("ipv6");
    const answers: Record<string, TurnAnswer> = {};
    for (const peer of [EXTERNAL_IPV4, "5.6.7.8", "5.6.7.7", "5.6.7.10"]) answers[peer] = await v4.createPermission(peer);
    for (const peer of ["2a01:4f8:1:2::3", "2a01:4f8:1:2::2", "2a01:4f8:1:2::4"]) answers[peer] = await v6.createPermission(peer);
    expect(answers).toEqual({
      [EXTERNAL_IPV4]: expect.objectContaining({ ok: false, code: 403 }),
      "5.6.7.8": expect.objectContaining({ ok: false, code: 403 }),
      "2a01:4f8:1:2::3": expect.objectContaining({ ok: false, code: 403 }),
      "5.6.7.7": { ok: true },
      "5.6.7.10": { ok: true },
      "2a01:4f8:1:2::2": { ok: true },
      "2a01:4f8:1:2::4": { ok: true },
    });
  });

  test("permits public IPv4 and IPv6 peers", async () => {
    const v4 = await allocation("ipv4");
    const v6 = await allocation("ipv6");
    const answers: Record<string, TurnAnswer> = {};
    for (const peer of ["1.2.3.4", "198.41.0.4", "223.255.255.254"]) answers[peer] = await v4.createPermission(peer);
    for (const peer of ["2a01:4f8::1", "2606:4700::1111", "2001:4860:4860::8888"]) answers[peer] = await v6.createPermission(peer);
    for (const [peer, answer] of Object.entries(answers)) expect({ peer, answer }).toEqual({ peer, answer: { ok: true } });
  });

  test("refuses peers at both ends and in the middle of every private, reserved and host range", async () => {
    const clientsByFamily = { ipv4: await allocation("ipv4"), ipv6: await allocation("ipv6") };
    // Another container on the host network, directly and embedded in IPv6 (mapped, compatible, NAT64).
    const neighbours = ["10.10.1.16", "fd10:10:10:1::1:16", "::ffff:a0a:110", "::a0a:110", "64:ff9b::a0a:110", "2002:a0a:110::1"];
    const peers = [...new Set([...[...DENIED_PEER_NETWORKS, ...HOST_NETWORKS].flatMap(sampleAddresses), ...neighbours])];
    const notRefused: string[] = [];
    for (const peer of peers) {
      const answer = await clientsByFamily[peer.includes(":") ? "ipv6" : "ipv4"].createPermission(peer);
      if (answer.ok || answer.code !== 403) notRefused.push(`${peer}: ${JSON.stringify(answer)}`);
    }
    expect(peers).toEqual(expect.arrayContaining(["0.0.0.0", "::", "::1", "::ffff:0:0", "ff00::"]));
    expect(notRefused).toEqual([]);
  });

  test("starts its TLS listener with the proxy's self-signed fallback while the TURN domain has no certificate", async () => {
    const peer = await tlsPeer(tlsListeningPort);
    expect(peer.subject.CN).toBe("ingress-proxy.invalid");
  });
});

describe("coturn's TLS certificate", () => {
  let sandbox: Sandbox;
  beforeEach(() => {
    sandbox = new Sandbox();
    sandbox.run(renderFallbackCertScript());
  });
  afterEach(() => sandbox.cleanup());

  const link = (name: string) => fs.readlinkSync(sandbox.at(`/run/coturn-tls/${name}`));

  test("is the fallback until the TURN domain's certificate exists, then coturn restarts onto it", async () => {
    const conf = prepare(sandbox, { [kvPaths.coturnDomain]: "turn.example.com" });
    expect(conf).toContain("realm=turn.example.com\ncert=/run/coturn-tls/fullchain.pem\npkey=/run/coturn-tls/key.pem\n");
    // Registered, not yet issued: the fallback, and the TLS listener starts with it.
    expect([link("fullchain.pem"), link("key.pem")]).toEqual([sandbox.at("/var/certs/fallback.fullchain.pem"), sandbox.at("/var/certs/fallback.key.pem")]);
    let server = await startTurnserver(sandbox);
    try {
      expect((await tlsPeer(tlsListeningPort)).subject.CN).toBe("ingress-proxy.invalid");
      // Nothing changed: the hourly check leaves coturn alone.
      sandbox.run(renderCoturnPrepareScript(), ["refresh"]);
      expect(sandbox.calls()).not.toContain("systemctl restart");

      // The ingress proxy's deploy hook has written the domain's pair: the check restarts coturn,
      // whose start links the domain's pair.
      issueDomainCertificate(sandbox, "turn.example.com");
      sandbox.run(renderCoturnPrepareScript(), ["refresh"]);
      expect(sandbox.calls()).toContain("systemctl restart coturn.service");
      await server.stop();
      sandbox.run(renderCoturnPrepareScript(), ["start"]);
      expect([link("fullchain.pem"), link("key.pem")]).toEqual([sandbox.at("/var/certs/turn.example.com.fullchain.pem"), sandbox.at("/var/certs/turn.example.com.key.pem")]);
      server = await startTurnserver(sandbox);
      expect((await tlsPeer(tlsListeningPort)).subject.CN).toBe("turn.example.com");
    } finally {
      await server.stop();
    }
  }, 60_000);

  test("coturn-prepare opens the configuration's directory to turnserver, which the secret's push may have created root-only", () => {
    // Seen in a real deploy: the LXD push of the secret created /etc/coturn with mode 0600, turnserver
    // could not read its configuration and coturn ran with none (no authentication, no denied peers).
    const conf = agent.render(renderTurnserverTemplate(OPTIONS), PORTS_KV);
    fs.writeFileSync(sandbox.at(COTURN_RENDERED_PATH), sandbox.move(conf));
    fs.writeFileSync(sandbox.at(COTURN_SECRET_PATH), renderStaticAuthSecret(SECRET));
    const dir = path.dirname(sandbox.at(COTURN_CONFIG_PATH));
    fs.chmodSync(dir, 0o600);
    sandbox.run(renderCoturnPrepareScript(), ["start"]);
    expect(fs.statSync(dir).mode & 0o777).toBe(0o755);
    expect(sandbox.calls()).toContain(`runuser -u turnserver -- test -r ${sandbox.at(COTURN_CONFIG_PATH)}`);
  });

  test("coturn-prepare refuses to start coturn without the secret line, or with more than that line", () => {
    const conf = agent.render(renderTurnserverTemplate(OPTIONS), PORTS_KV);
    fs.writeFileSync(sandbox.at(COTURN_RENDERED_PATH), sandbox.move(conf));
    const start = () => sandbox.run(renderCoturnPrepareScript(), ["start"]);
    expect(start).toThrow(/static-auth-secret\.conf is missing or not one static-auth-secret line: Terraform pushes it/);
    fs.writeFileSync(sandbox.at(COTURN_SECRET_PATH), `${renderStaticAuthSecret(SECRET)}no-auth\n`);
    expect(start).toThrow(/not one static-auth-secret line/);
    fs.writeFileSync(sandbox.at(COTURN_SECRET_PATH), "static-auth-secret=\n");
    expect(start).toThrow(/not one static-auth-secret line/);
    expect(fs.existsSync(sandbox.at(COTURN_CONFIG_PATH))).toBe(false);
    fs.writeFileSync(sandbox.at(COTURN_SECRET_PATH), renderStaticAuthSecret(SECRET));
    start();
    expect(fs.readFileSync(sandbox.at(COTURN_CONFIG_PATH), "utf8")).toContain(`static-auth-secret=${SECRET}\n`);
  });

  test("a domain key without its chain (half-written) keeps the fallback", () => {
    prepare(sandbox, { [kvPaths.coturnDomain]: "turn.example.com" });
    issueDomainCertificate(sandbox, "turn.example.com");
    fs.rmSync(sandbox.at("/var/certs/turn.example.com.fullchain.pem"));
    sandbox.run(renderCoturnPrepareScript(), ["start"]);
    expect(link("fullchain.pem")).toBe(sandbox.at("/var/certs/fallback.fullchain.pem"));
  });
});
