/**
 * One service in its own unprivileged LXD container: a static address from the host's address
 * plan, persistent storage volumes, proxy devices for public ports, cloud-init user-data that
 * installs the software, writes the rendered configuration and a default-drop firewall, and a
 * Consul catalog entry so that the ingress proxy and other services can find it.
 * Every module's deployment construct is built from this one.
 */
import { Construct } from "constructs";
import { Instance, InstanceDevice } from "../../gen/providers/lxd/instance";
import { StorageVolume } from "../../gen/providers/lxd/storage-volume";
import { Node } from "../../gen/providers/consul/node";
import { Service } from "../../gen/providers/consul/service";
import type { Host } from "../../lib/host";
import type { StaticAddress } from "../../lib/address-plan";
import { renderCloudInit, CloudInitFile } from "../../lib/render/cloud-init";
import { renderNftables, FirewallRule } from "../../lib/render/nftables";
import { terraformLiteral } from "../../lib/terraform-literal";
import { Problems } from "../../lib/problems";
import { ContainerRevision } from "./container-revision";

/** The stock image: Debian 12 with cloud-init, from the host's `images` remote. */
export const STOCK_IMAGE = "images:debian/12/cloud";

export interface PersistentVolume {
  /** Short name, unique within the container; the LXD volume is `<container>-<name>`. */
  readonly name: string;
  /** Mount point inside the container. */
  readonly path: string;
}

/** An existing LXD storage volume (typically another container's) mounted into this container. */
export interface AttachedVolume {
  /** Short name, unique within the container; the disk device is `attached-<name>`. */
  readonly name: string;
  /** Name of the existing LXD storage volume (a literal or another construct's token). */
  readonly volume: string;
  /** Mount point inside the container. */
  readonly path: string;
  /** Mount it read-only. @default true */
  readonly readonly?: boolean;
  /** Storage pool of the volume. @default the host's storage pool */
  readonly pool?: string;
}

export interface PublicPort {
  readonly protocol: "tcp" | "udp";
  /** A port or an inclusive [first, last] range, the same on the host and in the container. */
  readonly port: number | readonly [number, number];
}

export interface CatalogService {
  readonly name: string;
  readonly port: number;
  /** @default none */
  readonly tags?: string[];
}

export interface ServiceContainerProps {
  readonly host: Host;
  /** Container name; prefixed by the project or module id by the caller. */
  readonly name: string;
  /** Last octet of the static address (also the last IPv6 hextet). */
  readonly hostPart: number;
  /** Prop path of the host part, for error messages. @default "<name>.hostPart" */
  readonly hostPartProp?: string;
  /**
   * Image to launch. When set, the image is assumed to carry the software already and no
   * packages are installed (cloud-init then works offline).
   * @default STOCK_IMAGE, with `packages` installed by cloud-init
   */
  readonly image?: string;
  /** Debian packages the stock image needs. @default none */
  readonly packages?: readonly string[];
  /** Commands that bring the stock image up to what a pre-built image carries (downloads etc.). @default none */
  readonly stockImageCommands?: readonly string[];
  readonly files?: readonly CloudInitFile[];
  /** Commands run once at first boot, after files are written. @default none */
  readonly commands?: readonly string[];
  /** Ports the service accepts; everything else is dropped. */
  readonly firewall: readonly FirewallRule[];
  /** @default none */
  readonly volumes?: readonly PersistentVolume[];
  /** Existing volumes owned elsewhere (never created or destroyed here). @default none */
  readonly attachVolumes?: readonly AttachedVolume[];
  /** Ports forwarded from the host's public addresses by LXD proxy devices. @default none */
  readonly publicPorts?: readonly PublicPort[];
  /** Consul catalog entry. @default none */
  readonly service?: CatalogService;
  /**
   * Refuse to destroy the persistent volumes (`prevent_destroy`), so that a careless
   * `destroy` cannot drop data silently.
   * @default true
   */
  readonly protectData?: boolean;
  /** Resource limits such as `{ cpu: "2", memory: "2GiB" }`. @default none */
  readonly limits?: Record<string, string>;
}

export class ServiceContainer extends Construct {
  readonly instance: Instance;
  readonly address: StaticAddress;
  readonly name: string;
  readonly volumes: StorageVolume[];
  /** The Consul service name, when registered. */
  readonly serviceName?: string;
  /** The rendered user-data, for tests and validators. */
  readonly userData: string;
  /**
   * Holds what the container is built from (image and user-data). LXD updates user-data in
   * place and cloud-init never runs it again, so a change replaces the container instead;
   * the storage volumes stay.
   */
  readonly revision: ContainerRevision;

  constructor(scope: Construct, id: string, props: ServiceContainerProps) {
    super(scope, id);
    const { host } = props;
    this.name = props.name;
    const attached = props.attachVolumes ?? [];
    const problems = new Problems();
    attached.forEach((v, i) => {
      problems.check(/^[a-z0-9][a-z0-9-]*$/.test(v.name), `attachVolumes[${i}].name`, `must be lower-case letters, digits and dashes, got ${JSON.stringify(v.name)}`);
      problems.check(attached.findIndex((o) => o.name === v.name) === i, `attachVolumes[${i}].name`, `${JSON.stringify(v.name)} is used twice; names must be unique`);
      problems.check(v.path.startsWith("/"), `attachVolumes[${i}].path`, `must be an absolute path, got ${JSON.stringify(v.path)}`);
    });
    problems.throwIfAny(`${this.node.path}: invalid ServiceContainer props`);
    this.address = host.addresses.reserve(props.name, props.hostPart, props.hostPartProp);
    (props.publicPorts ?? []).forEach((p, i) => {
      const [first, last] = typeof p.port === "number" ? [p.port, p.port] : p.port;
      host.publicPorts.reserve(this.node.path, p.protocol, first, last, `publicPorts[${i}]`);
    });
    const prebuilt = props.image !== undefined;

    this.userData = renderCloudInit({
      // The stock image has no nftables: without it the container would run with no firewall.
      packages: prebuilt ? [] : [...new Set(["nftables", ...(props.packages ?? [])])],
      files: [...(props.files ?? []), { path: "/etc/nftables.conf", content: renderNftables({ rules: props.firewall }), permissions: "0755" }],
      commands: [
        // LXD writes the user-data seed (secrets included) world-readable; only root needs it.
        "chmod -R go= /var/lib/cloud/seed 2>/dev/null || true",
        // The firewall goes up first, and a container that cannot have one stops here.
        'command -v nft >/dev/null || { echo "nftables is missing: refusing to run without a firewall" >&2; exit 1; }',
        "nft -f /etc/nftables.conf && systemctl enable nftables",
        ...(prebuilt ? [] : (props.stockImageCommands ?? [])),
        ...(props.commands ?? []),
      ],
    });

    this.volumes = (props.volumes ?? []).map(
      (v) =>
        new StorageVolume(this, `volume-${v.name}`, {
          name: `${props.name}-${v.name}`,
          pool: host.lxd.storagePool,
          project: host.lxd.project,
          target: host.lxd.target,
          lifecycle: { preventDestroy: props.protectData ?? true },
        }),
    );

    const devices: InstanceDevice[] = [
      {
        name: "eth0",
        type: "nic",
        properties: {
          network: host.networkName,
          "ipv4.address": this.address.ipv4,
          ...(this.address.ipv6 ? { "ipv6.address": this.address.ipv6 } : {}),
        },
      },
      ...(props.volumes ?? []).map((v, i) => ({
        name: `data-${v.name}`,
        type: "disk",
        properties: { pool: host.lxd.storagePool, source: this.volumes[i].name, path: v.path },
      })),
      ...attached.map((v) => ({
        name: `attached-${v.name}`,
        type: "disk",
        properties: { pool: v.pool ?? host.lxd.storagePool, source: v.volume, path: v.path, readonly: String(v.readonly ?? true) },
      })),
      ...proxyDevices(host, this.address, props.publicPorts ?? []),
    ];

    const userData = terraformLiteral(this.userData);
    const image = props.image ?? STOCK_IMAGE;
    this.revision = new ContainerRevision(this, "revision", { triggersReplace: { image, user_data: userData } });

    this.instance = new Instance(this, "instance", {
      name: props.name,
      image,
      project: host.lxd.project,
      profiles: host.lxd.profiles,
      target: host.lxd.target,
      config: {
        "security.privileged": "false",
        "cloud-init.user-data": userData,
        ...Object.fromEntries(Object.entries(props.limits ?? {}).map(([k, v]) => [`limits.${k}`, v])),
      },
      device: devices,
      waitFor: [{ type: "ipv4" }],
      // A bare address: cdktf 0.21 renders a resource object here as "${…}", which Terraform refuses.
      lifecycle: { replaceTriggeredBy: [this.revision.address] },
    });

    if (props.service) {
      this.serviceName = props.service.name;
      const node = new Node(this, "catalog-node", { name: props.name, address: this.address.ipv4 });
      new Service(this, "catalog-service", {
        name: props.service.name,
        nodeAttribute: node.name,
        address: this.address.ipv4,
        port: props.service.port,
        tags: props.service.tags,
      });
    }
  }
}

function proxyDevices(host: Host, address: StaticAddress, ports: readonly PublicPort[]): InstanceDevice[] {
  const listeners: { family: string; listen: string; connect: string }[] = [
    { family: "v4", listen: host.publicIpv4, connect: address.ipv4 },
  ];
  if (host.publicIpv6 && address.ipv6) {
    listeners.push({ family: "v6", listen: `[${host.publicIpv6}]`, connect: `[${address.ipv6}]` });
  }
  return listeners.flatMap(({ family, listen, connect }) =>
    ports.map((p) => {
      const port = typeof p.port === "number" ? String(p.port) : `${p.port[0]}-${p.port[1]}`;
      return {
        name: `proxy-${p.protocol}-${port}-${family}`,
        type: "proxy",
        properties: { listen: `${p.protocol}:${listen}:${port}`, connect: `${p.protocol}:${connect}:${port}`, nat: "true" },
      };
    }),
  );
}
