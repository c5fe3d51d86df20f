/**
 * coturn with a real TURN exchange (support/turn_probe.py) through the public address.
 *
 * TURN: an allocation with credentials derived from the shared secret as Synapse derives them
 * (TURN REST API), refused with a wrong password; then CreatePermission for a public peer
 * (granted) and for an address in each denied IPv4 range (refused with 403). Permission
 * answers only: nothing is ever sent to a peer. (The allocation is IPv4, so the IPv6 ranges
 * are not asked about.)
 */
import * as path from "path";
import { SPECIAL_PURPOSE_NETWORKS } from "../../lib/special-networks";
import { deployment } from "./support/deployment";
import { run } from "./support/lxd";

const d = deployment();

/** An address inside an IPv4 CIDR: its network address + 1. */
function addressIn(cidr: string): string {
  const [net] = cidr.split("/");
  const parts = net.split(".").map(Number);
  parts[3] += 1;
  return parts.join(".");
}

describe("coturn", () => {
  const denied = SPECIAL_PURPOSE_NETWORKS.filter((n) => !n.includes(":"));
  const publicPeer = "1.2.3.4";
  let result: {
    allocate: { class: string; code?: number; relayed?: string; realm?: string };
    wrong_password: { class: string; code?: number };
    permissions: Record<string, { class: string; code?: number; reason?: string }>;
  };

  beforeAll(() => {
    const port = d.state.plan.kv["service/coturn/listening-port"] ?? "3478";
    const r = run("python3", [
      path.join(__dirname, "support", "turn_probe.py"),
      d.publicIp,
      port,
      d.secret("coturn_shared-secret"),
      `@${d.state.facts.ADMIN_USER}:${d.state.facts.DOMAIN}`,
      publicPeer,
      ...denied.map(addressIn),
    ]);
    if (r.code !== 0) throw new Error(`turn_probe.py: ${r.stderr}`);
    result = JSON.parse(r.stdout);
  });

  test("an allocation with the shared-secret credentials succeeds and relays on the public address", () => {
    expect(result.allocate).toMatchObject({ class: "success", realm: d.state.facts.TURN_DOMAIN });
    expect(result.allocate.relayed).toMatch(new RegExp(`^${d.publicIp.replace(/\./g, "\\.")}:\\d+$`));
  });

  test("an allocation with a wrong password is refused (401)", () => {
    expect(result.wrong_password).toMatchObject({ class: "error", code: 401 });
  });

  test(`a permission for the public peer ${publicPeer} is granted`, () => {
    expect(result.permissions[publicPeer]).toEqual({ class: "success" });
  });

  test.each(denied)("a permission for a peer in the denied range %s is refused (403)", (cidr) => {
    expect(result.permissions[addressIn(cidr)]).toMatchObject({ class: "error", code: 403 });
  });
});
