/**
 * coturn with a real TURN exchange (test/support/turn-client.ts, the client of the unit tests and
 * the deploy suite) through the public address.
 *
 * TURN: an allocation with credentials derived from the shared secret as Synapse derives them
 * (TURN REST API), refused with a wrong password; then CreatePermission for a public peer
 * (granted) and for an address in each denied IPv4 range (refused with 403). Permission
 * answers only: nothing is ever sent to a peer. (The allocation is IPv4, so the IPv6 ranges
 * are not asked about.)
 */
import { SPECIAL_PURPOSE_NETWORKS } from "../../lib/special-networks";
import { TurnAnswer, TurnClient, restCredentials } from "../support/turn-client";
import { deployment } from "./support/deployment";

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
  const result: { allocate?: TurnAnswer; realm?: string; relayed?: string; wrongPassword?: TurnAnswer; permissions: Record<string, TurnAnswer> } = { permissions: {} };

  beforeAll(async () => {
    const port = Number(d.state.plan.kv["service/coturn/listening-port"] ?? "3478");
    const { username, password } = restCredentials(d.secret("coturn_shared-secret"), `@${d.state.facts.ADMIN_USER}:${d.state.facts.DOMAIN}`);
    const wrong = await TurnClient.connect(d.publicIp, port);
    try {
      result.wrongPassword = await wrong.allocate(username, `${password}x`);
    } finally {
      await wrong.close();
    }
    const turn = await TurnClient.connect(d.publicIp, port);
    try {
      result.allocate = await turn.allocate(username, password);
      result.realm = turn.realm;
      result.relayed = turn.relayed;
      for (const peer of [publicPeer, ...denied.map(addressIn)]) result.permissions[peer] = await turn.createPermission(peer);
    } finally {
      await turn.close();
    }
  });

  test("an allocation with the shared-secret credentials succeeds and relays on the public address", () => {
    expect(result.allocate).toEqual({ ok: true });
    expect(result.realm).toBe(d.state.facts.TURN_DOMAIN);
    expect(result.relayed).toMatch(new RegExp(`^${d.publicIp.replace(/\./g, "\\.")}:\\d+$`));
  });

  test("an allocation with a wrong password is refused (401)", () => {
    expect(result.wrongPassword).toMatchObject({ ok: false, code: 401 });
  });

  test(`a permission for the public peer ${publicPeer} is granted`, () => {
    expect(result.permissions[publicPeer]).toEqual({ ok: true });
  });

  test.each(denied)("a permission for a peer in the denied range %s is refused (403)", (cidr) => {
    expect(result.permissions[addressIn(cidr)]).toMatchObject({ ok: false, code: 403 });
  });
});
