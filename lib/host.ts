/**
 * The description of one LXD + Consul host: how Terraform reaches its LXD daemon and Consul
 * server, its container network (an IPv4 /24 and optionally an IPv6 /112) and the public
 * addresses its proxy devices listen on. Every construct on the host takes the same `Host`,
 * so its address plan sees every static address handed out on that host, across stacks.
 */
import { PORT_RULE, Problems, isPort } from "./problems";
import { LXD_ADDRESS_PATTERN, LXD_ADDRESS_RULE, notAHostIpv4, portOfAddress, unusableIpv4Network, unusableIpv6Prefix } from "./rules";
import { AddressPlan, PublicPortPlan } from "./address-plan";

export interface HostIpv6Props {
  /** The /64 prefix as four hextets without a trailing `::`, e.g. `fd10:10:10:1`. */
  readonly prefix: string;
  /** The subnet hextet that, with the prefix, makes the /112 container network (`<prefix>::<subnet>:0/112`). @default "1" */
  readonly subnet?: string;
  /** The host's public IPv6 address; when set, proxy devices listen on it too. @default no public IPv6 listener */
  readonly publicAddress?: string;
}

/** Major version of the `terraform-lxd/lxd` provider a stack is written for. */
export type LxdProviderMajor = 1 | 3;

export interface HostLxdProps {
  /**
   * Major version of the `terraform-lxd/lxd` provider: 3 (`lxd_instance`, `lxd_storage_volume`,
   * `lxd_instance_device`) or 1 (`lxd_container`, `lxd_volume`, the API rollyourown used). Only
   * constructs/core/lxd-dialect.ts looks at it. Provider 1.x supports only the "default" project,
   * the `images` remote of the lxc client configuration and the client certificate in its
   * configuration directory.
   * @default 3
   */
  readonly provider?: LxdProviderMajor;
  /** Name of the LXD remote in the provider configuration. @default the host id */
  readonly remoteName?: string;
  /** Address of the LXD API (`unix://`, `unix:///path/unix.socket` or `https://host:8443`). @default "unix://" (the local daemon) */
  readonly address?: string;
  /** Client certificate file for an `https` remote. @default none */
  readonly clientCertificateFile?: string;
  /** Client key file for an `https` remote. @default none */
  readonly clientKeyFile?: string;
  /** SHA-256 fingerprint of the remote's server certificate. @default none (the provider's own checks) */
  readonly serverCertificateFingerprint?: string;
  /** LXD project the instances and volumes live in. @default "default" */
  readonly project?: string;
  /** Storage pool for persistent volumes. @default "default" */
  readonly storagePool?: string;
  /** Profiles every instance gets. @default ["default"] */
  readonly profiles?: string[];
  /** Cluster member that runs the instances (LXD clusters). @default none (LXD chooses) */
  readonly target?: string;
  /** Simplestreams image server used for the stock images, named `images` in the provider. @default "https://images.lxd.canonical.com" */
  readonly imageServer?: string;
}

export interface HostConsulProps {
  /** `host:port` of the Consul server's HTTP API, reachable from Terraform and from the containers. @default "<ipv4NetworkPart>.1:8500" */
  readonly address?: string;
  /** @default "http" */
  readonly scheme?: "http" | "https";
  /** @default the host id */
  readonly datacenter?: string;
  /** Consul's DNS domain. @default "consul" */
  readonly dnsDomain?: string;
  /** Consul's DNS port on the server address. @default 8600 */
  readonly dnsPort?: number;
  /**
   * The Consul server enforces ACLs (default deny). Each container that reads Consul then gets
   * its own read-only token, limited to the KV prefixes its templates render, pushed as a
   * root-only file; Terraform writes with the token in its environment (`CONSUL_HTTP_TOKEN`),
   * which needs the rights to write those KV prefixes, register catalog entries and create ACL
   * policies and tokens. Without ACLs any container can rewrite the KV contract (admin-path
   * denies, database registrations): turn this off only for a Consul server without ACLs that
   * nothing untrusted can reach.
   * @default true
   */
  readonly acl?: boolean;
}

export interface HostProps {
  /** Letters and digits only; names the LXD network, remote and Consul datacenter by default. */
  readonly hostId: string;
  /** The first three octets of the container network's /24, e.g. `10.10.1`. The host is `.1`. */
  readonly ipv4NetworkPart: string;
  /** IPv6 for the container network. @default IPv4 only */
  readonly ipv6?: HostIpv6Props;
  /** The IPv4 address the proxy devices for public ports listen on (ryo's `host_control_ip`). */
  readonly publicIpv4: string;
  /** The public IPv4 address clients see, advertised by coturn as `external-ip`. @default publicIpv4 */
  readonly externalIpv4?: string;
  /** LXD bridge network the containers attach to. @default the host id */
  readonly networkName?: string;
  /** Host parts (last octet) that DHCP hands out and static addresses must avoid. @default { first: 100, last: 254 } */
  readonly dhcpRange?: { readonly first: number; readonly last: number };
  readonly lxd?: HostLxdProps;
  readonly consul?: HostConsulProps;
}

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
const HEXTET = /^[0-9a-f]{1,4}$/;

export function isIpv4(value: string): boolean {
  return IPV4.test(value);
}

export function isIpv6(value: string): boolean {
  if (!/^[0-9a-f:]+$/.test(value) || value.split("::").length > 2) return false;
  const groups = value.split(":").filter((g) => g !== "");
  return groups.every((g) => HEXTET.test(g)) && (value.includes("::") ? groups.length < 8 : groups.length === 8);
}

/** A validated host with derived addresses and its address plan. */
export class Host {
  readonly hostId: string;
  readonly networkName: string;
  readonly ipv4NetworkPart: string;
  readonly ipv6Prefix?: string;
  readonly ipv6Subnet: string;
  readonly publicIpv4: string;
  readonly externalIpv4: string;
  readonly publicIpv6?: string;
  readonly lxd: Required<Pick<HostLxdProps, "provider" | "remoteName" | "address" | "project" | "storagePool" | "profiles" | "imageServer">> &
    HostLxdProps;
  readonly consul: Required<HostConsulProps>;
  readonly addresses: AddressPlan;
  /** Ports the proxy devices listen on, across every stack that shares this Host. */
  readonly publicPorts = new PublicPortPlan();

  constructor(props: HostProps) {
    const problems = new Problems();
    validateHostProps(props, problems);
    problems.throwIfAny("invalid host description");

    this.hostId = props.hostId;
    this.networkName = props.networkName ?? props.hostId;
    this.ipv4NetworkPart = props.ipv4NetworkPart;
    this.ipv6Prefix = props.ipv6?.prefix;
    this.ipv6Subnet = props.ipv6?.subnet ?? "1";
    this.publicIpv4 = props.publicIpv4;
    this.externalIpv4 = props.externalIpv4 ?? props.publicIpv4;
    this.publicIpv6 = props.ipv6?.publicAddress;
    this.lxd = {
      ...props.lxd,
      provider: props.lxd?.provider ?? 3,
      remoteName: props.lxd?.remoteName ?? props.hostId,
      address: props.lxd?.address ?? "unix://",
      project: props.lxd?.project ?? "default",
      storagePool: props.lxd?.storagePool ?? "default",
      profiles: props.lxd?.profiles ?? ["default"],
      imageServer: props.lxd?.imageServer ?? "https://images.lxd.canonical.com",
    };
    this.consul = {
      address: props.consul?.address ?? `${this.gatewayIpv4}:8500`,
      scheme: props.consul?.scheme ?? "http",
      datacenter: props.consul?.datacenter ?? props.hostId,
      dnsDomain: props.consul?.dnsDomain ?? "consul",
      dnsPort: props.consul?.dnsPort ?? 8600,
      acl: props.consul?.acl ?? true,
    };
    this.addresses = new AddressPlan(this, props.dhcpRange ?? DEFAULT_DHCP_RANGE);
  }

  get dualStack(): boolean {
    return this.ipv6Prefix !== undefined;
  }

  /** The host's own address on the container network. */
  get gatewayIpv4(): string {
    return `${this.ipv4NetworkPart}.1`;
  }

  get gatewayIpv6(): string | undefined {
    return this.ipv6Prefix && this.ipv6(1);
  }

  ipv4(hostPart: number): string {
    return `${this.ipv4NetworkPart}.${hostPart}`;
  }

  /** ryo's convention: the decimal host part written literally as the last hextet. */
  ipv6(hostPart: number): string | undefined {
    return this.ipv6Prefix && `${this.ipv6Prefix}::${this.ipv6Subnet}:${hostPart}`;
  }

  /** The container network as CIDRs, for firewall rules. */
  get networkCidrs(): string[] {
    const cidrs = [`${this.ipv4NetworkPart}.0/24`];
    if (this.ipv6Prefix) cidrs.push(`${this.ipv6Prefix}::${this.ipv6Subnet}:0/112`);
    return cidrs;
  }

  /** The host's own addresses on the container network as `/32` and `/128`: the default admin network. */
  get gatewayCidrs(): string[] {
    return [`${this.gatewayIpv4}/32`, ...(this.gatewayIpv6 ? [`${this.gatewayIpv6}/128`] : [])];
  }

  /** The Consul server's IP address (without port), as containers reach it. */
  get consulIp(): string {
    const address = this.consul.address;
    const bracketed = /^\[([^\]]+)\]:\d+$/.exec(address);
    if (bracketed) return bracketed[1];
    return address.replace(/:\d+$/, "");
  }
}

/** The host parts LXD's DHCP hands out by default on the project's networks; static addresses stay below. */
export const DEFAULT_DHCP_RANGE = { first: 100, last: 254 } as const;

/** Linux limits interface names, and so LXD bridge names, to 15 characters. */
export const MAX_NETWORK_NAME_LENGTH = 15;

/** Records every problem with a host description; exported so the configuration file reports the same rules. */
export function validateHostProps(props: HostProps, problems: Problems): void {
  problems.check(
    /^[A-Za-z0-9]+$/.test(props.hostId ?? ""),
    "host.hostId",
    `must be letters and digits only (no spaces, dashes or other symbols), got ${JSON.stringify(props.hostId)}`,
  );
  const parts = (props.ipv4NetworkPart ?? "").split(".");
  problems.check(
    parts.length === 3 && isIpv4(`${props.ipv4NetworkPart}.0`),
    "host.ipv4NetworkPart",
    `must be the first three octets of an IPv4 /24 such as "10.10.1", got ${JSON.stringify(props.ipv4NetworkPart)}`,
  );
  problems.check(isIpv4(props.publicIpv4 ?? ""), "host.publicIpv4", `must be an IPv4 address, got ${JSON.stringify(props.publicIpv4)}`);
  for (const [prop, address] of [["host.publicIpv4", props.publicIpv4], ["host.externalIpv4", props.externalIpv4]] as const) {
    const why = address !== undefined && isIpv4(address) ? notAHostIpv4(address) : undefined;
    if (why) problems.add(prop, `${address} is in ${why}, not a single host's address; give the host's own public address`);
  }
  const networkOk = parts.length === 3 && isIpv4(`${props.ipv4NetworkPart}.0`);
  const unusable = networkOk ? unusableIpv4Network(props.ipv4NetworkPart) : undefined;
  if (unusable) problems.add("host.ipv4NetworkPart", `${props.ipv4NetworkPart}.0/24 is in ${unusable}, which a container network cannot use; choose a private range such as 10.10.1`);
  if (networkOk && isIpv4(props.publicIpv4 ?? "") && props.publicIpv4.startsWith(`${props.ipv4NetworkPart}.`) && props.publicIpv4 !== `${props.ipv4NetworkPart}.1`) {
    problems.add(
      "host.publicIpv4",
      `${props.publicIpv4} is an address of the container network ${props.ipv4NetworkPart}.0/24; the proxy devices listen on one of the host's own addresses (its public address, or ${props.ipv4NetworkPart}.1)`,
    );
  }
  const bridge = props.networkName ?? props.hostId ?? "";
  if (bridge.length > MAX_NETWORK_NAME_LENGTH) {
    problems.add(
      props.networkName === undefined ? "host.hostId" : "host.networkName",
      props.networkName === undefined
        ? `is also the LXD bridge name when no network name is given, and Linux limits that to ${MAX_NETWORK_NAME_LENGTH} characters (got ${bridge.length}); shorten it or name the network`
        : `Linux limits bridge names to ${MAX_NETWORK_NAME_LENGTH} characters, got ${bridge.length}`,
    );
  }
  if (props.externalIpv4 !== undefined) {
    problems.check(isIpv4(props.externalIpv4), "host.externalIpv4", `must be an IPv4 address, got ${JSON.stringify(props.externalIpv4)}`);
  }
  if (props.ipv6) {
    const hextets = props.ipv6.prefix.split(":");
    problems.check(
      hextets.length === 4 && hextets.every((h) => HEXTET.test(h)),
      "host.ipv6.prefix",
      `must be four lower-case hextets without a trailing "::" such as "fd10:10:10:1", got ${JSON.stringify(props.ipv6.prefix)}`,
    );
    if (props.ipv6.subnet !== undefined) {
      problems.check(HEXTET.test(props.ipv6.subnet), "host.ipv6.subnet", `must be one hextet such as "1", got ${JSON.stringify(props.ipv6.subnet)}`);
    }
    const prefixUnusable = hextets.length === 4 && hextets.every((h) => HEXTET.test(h)) ? unusableIpv6Prefix(props.ipv6.prefix) : undefined;
    if (prefixUnusable) problems.add("host.ipv6.prefix", `${props.ipv6.prefix}::/64 is in ${prefixUnusable}, which a container network cannot use; choose a unique local prefix such as fd10:10:10:1`);
    const publicAddress = props.ipv6.publicAddress;
    if (publicAddress !== undefined) {
      problems.check(isIpv6(publicAddress), "host.ipv6.publicAddress", `must be an IPv6 address in lower case, got ${JSON.stringify(publicAddress)}`);
      problems.check(
        !isIpv6(publicAddress) || !(publicAddress === "::" || publicAddress.startsWith("ff")),
        "host.ipv6.publicAddress",
        `${publicAddress} is the unspecified or a multicast address, not a single host's address; give the host's own public address`,
      );
      const containerNet = `${props.ipv6.prefix}::${props.ipv6.subnet ?? "1"}:`;
      if (isIpv6(publicAddress) && publicAddress.startsWith(containerNet) && publicAddress !== `${containerNet}1`) {
        problems.add(
          "host.ipv6.publicAddress",
          `${publicAddress} is an address of the container network ${containerNet}0/112; the proxy devices listen on one of the host's own addresses`,
        );
      }
    }
  }
  if (props.dhcpRange) {
    const { first, last } = props.dhcpRange;
    problems.check(
      Number.isInteger(first) && Number.isInteger(last) && first >= 2 && first <= last && last <= 254,
      "host.dhcpRange",
      `must satisfy 2 <= first <= last <= 254, got ${first}-${last}`,
    );
  }
  const consulPort = props.consul?.address !== undefined ? portOfAddress(props.consul.address) : undefined;
  if (props.consul?.address !== undefined) {
    problems.check(
      consulPort !== undefined && isPort(consulPort),
      "host.consul.address",
      `must be host:port with a port that is ${PORT_RULE}, got ${JSON.stringify(props.consul.address)}`,
    );
  }
  if (props.consul?.acl !== undefined) {
    problems.check(typeof props.consul.acl === "boolean", "host.consul.acl", `must be true or false, got ${JSON.stringify(props.consul.acl)}`);
  }
  if (props.consul?.dnsPort !== undefined) {
    problems.check(isPort(props.consul.dnsPort), "host.consul.dnsPort", `must be an integer from 1 to 65535, got ${props.consul.dnsPort}`);
  }
  if (props.lxd) {
    lxdProviderProblems(props.lxd, problems, (key) => `host.lxd.${key}`);
  }
  if (props.lxd?.address !== undefined) {
    problems.check(
      LXD_ADDRESS_PATTERN.test(props.lxd.address),
      "host.lxd.address",
      `must be ${LXD_ADDRESS_RULE}, got ${JSON.stringify(props.lxd.address)}`,
    );
  }
}

/**
 * What the chosen LXD provider major cannot do with these settings. Shared by the host
 * description and the configuration file (which names the fields its own way).
 */
export function lxdProviderProblems(
  lxd: Pick<HostLxdProps, "provider" | "project" | "clientCertificateFile" | "clientKeyFile" | "serverCertificateFingerprint" | "imageServer">,
  problems: Problems,
  field: (key: "provider" | "project" | "clientCertificateFile" | "clientKeyFile" | "serverCertificateFingerprint" | "imageServer") => string,
): void {
  if (lxd.provider === undefined) return;
  if (lxd.provider !== 1 && lxd.provider !== 3) {
    problems.add(field("provider"), `must be 3 (terraform-lxd/lxd 3.x) or 1 (1.x), got ${JSON.stringify(lxd.provider)}`);
    return;
  }
  if (lxd.provider !== 1) return;
  const v1 = "LXD provider 1.x";
  if (lxd.project !== undefined && lxd.project !== "default") {
    problems.add(
      field("project"),
      `${v1} creates containers only in the "default" project (with a project set it refuses to launch local images: "The source server isn't listening on the network"); use provider 3 for the project ${JSON.stringify(lxd.project)}`,
    );
  }
  for (const key of ["clientCertificateFile", "clientKeyFile", "serverCertificateFingerprint"] as const) {
    if (lxd[key] !== undefined) {
      problems.add(field(key), `${v1} has no such setting: it reads client.crt and client.key from the lxc client configuration directory (~/.config/lxc); remove it, or use provider 3`);
    }
  }
  if (lxd.imageServer !== undefined) {
    problems.add(
      field("imageServer"),
      `${v1} has no image server setting: stock images (images:debian/12/cloud) resolve through the lxc client configuration; add the server there with \`lxc remote add images <url> --protocol simplestreams\`, or use provider 3`,
    );
  }
}
