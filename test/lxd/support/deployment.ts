/**
 * The deployment the global setup made, as the tests need it: each component's container
 * name and address, the generated-secret test values, the Consul client.
 */
import { CLIENT, Consul, SuiteState, curl, hostConsul, readState, run, shIn } from "./lxd";

export type Component = "ingress-proxy" | "postgres" | "wellknown" | "coturn" | "synapse" | "element" | "synapse-admin";

export interface Deployment {
  readonly state: SuiteState;
  readonly consul: Consul;
  /** The proxy devices' listen address (host.public_ipv4). */
  readonly publicIp: string;
  readonly gateway: string;
  readonly client: string;
  readonly clientAddress: string;
  name(c: Component): string;
  address(c: Component): string;
  /** The test value of the random_password whose resource id contains `fragment`. */
  secret(fragment: string): string;
}

export function deployment(): Deployment {
  const state = readState();
  const f = state.facts;
  const address = (c: Component): string => `${f.IPV4_PART}.${f[`HOSTPART_${c.toUpperCase().replace(/-/g, "_")}`]}`;
  const name = (c: Component): string => {
    const ip = address(c);
    const inst = state.plan.instances.find((i) => i.devices.some((d) => d.name === "eth0" && d.properties["ipv4.address"] === ip));
    if (!inst) throw new Error(`no container of the plan has ${c}'s address ${ip}`);
    return inst.name;
  };
  return {
    state,
    consul: hostConsul(f),
    publicIp: f.PUBLIC_IPV4,
    gateway: f.GATEWAY4,
    client: CLIENT,
    clientAddress: state.clientAddress,
    name,
    address,
    secret(fragment: string): string {
      const ids = Object.keys(state.plan.secrets).filter((id) => id.includes(fragment));
      if (ids.length !== 1) throw new Error(`secret ${fragment}: ${ids.length} matches`);
      return state.plan.secrets[ids[0]];
    },
  };
}

/** POST /_matrix/client/v3/login for the admin, on Synapse's own address. */
export function adminLogin(d: Deployment): ReturnType<typeof curl> {
  return curl([
    "-X",
    "POST",
    "-H",
    "Content-Type: application/json",
    "--data-binary",
    JSON.stringify({ type: "m.login.password", identifier: { type: "m.id.user", user: d.state.facts.ADMIN_USER }, password: d.state.plan.adminPassword }),
    `http://${d.address("synapse")}:8008/_matrix/client/v3/login`,
  ]);
}

/** Polls `check` until it returns true or `timeoutMs` passes; returns whether it did. */
export async function eventually(check: () => boolean, timeoutMs: number, intervalMs = 1000): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (check()) return true;
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/**
 * curl from the client container from a source address outside the host network (a second
 * address on its eth0): a container whose firewall admits the host network only must drop it.
 * Returns curl's exit code (28 = timed out, i.e. dropped).
 */
export function curlFromOutsideNetwork(d: Deployment, url: string): number {
  const outside = "172.31.254.9";
  shIn(d.client, `ip addr show dev eth0 | grep -q ${outside} || ip addr add ${outside}/32 dev eth0`);
  return shIn(d.client, `curl -s -o /dev/null -m 3 --interface ${outside} ${url}`).code;
}

export { run };
