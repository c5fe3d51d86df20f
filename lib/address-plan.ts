/**
 * Hands out static container addresses on one host and refuses the two classic mistakes:
 * two components on one address, and an address outside the usable part of the network.
 */
import type { Host } from "./host";
import { Problems, ValidationError } from "./problems";
import { PublicListener, checkPublicListeners } from "./rules";

export interface StaticAddress {
  readonly hostPart: number;
  readonly ipv4: string;
  /** Present on dual-stack hosts. */
  readonly ipv6?: string;
}

export class AddressPlan {
  private readonly owners = new Map<number, string>();

  constructor(
    private readonly host: Host,
    private readonly dhcpRange: { readonly first: number; readonly last: number },
  ) {}

  /**
   * Reserves `hostPart` (the last IPv4 octet, also the last IPv6 hextet) for `owner`.
   * @throws Error naming the prop, the valid range and, on a collision, the other owner.
   */
  reserve(owner: string, hostPart: number, propPath = `${owner}.hostPart`): StaticAddress {
    const { first, last } = this.dhcpRange;
    const valid = `an integer from 2 to 254 outside the DHCP range ${first}-${last}`;
    if (!Number.isInteger(hostPart) || hostPart < 2 || hostPart > 254 || (hostPart >= first && hostPart <= last)) {
      throw new Error(`${propPath}: ${hostPart} is not a usable address on ${this.host.ipv4NetworkPart}.0/24; must be ${valid}`);
    }
    const taken = this.owners.get(hostPart);
    if (taken !== undefined && taken !== owner) {
      throw new Error(`${propPath}: ${this.host.ipv4(hostPart)} is already used by ${taken}; choose another host part (${valid})`);
    }
    this.owners.set(hostPart, owner);
    return { hostPart, ipv4: this.host.ipv4(hostPart), ipv6: this.host.ipv6(hostPart) };
  }

  /** Who holds which host part, for diagnostics. */
  get reservations(): ReadonlyMap<number, string> {
    return this.owners;
  }
}

/**
 * The ports the host's proxy devices listen on, on its public addresses. LXD refuses a second
 * device on the same address, protocol and port only at deploy time; this refuses it at synth.
 */
export class PublicPortPlan {
  private readonly taken: PublicListener[] = [];

  /**
   * Reserves `protocol` `first`-`last` for `owner` (a construct path).
   * @throws ValidationError naming `propPath` and the owner that already listens there.
   */
  reserve(owner: string, protocol: "tcp" | "udp", first: number, last = first, propPath = "publicPorts"): void {
    const candidate = { owner, protocol, first, last };
    const problems = new Problems();
    checkPublicListeners([...this.taken.filter((t) => t.owner !== owner), candidate], problems);
    const clashes = problems.list.filter((p) => p.path === owner);
    if (clashes.length > 0) {
      throw new ValidationError(clashes.map((p) => ({ path: propPath, message: p.message })), `${owner}: public port already taken`);
    }
    this.taken.push(candidate);
  }
}
