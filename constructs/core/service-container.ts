/**
 * One service in its own unprivileged LXD container: a static address from the host's address
 * plan, persistent storage volumes, proxy devices for public ports, cloud-init user-data that
 * installs the software, writes the rendered configuration and a default-drop firewall, and a
 * Consul catalog entry so that the ingress proxy and other services can find it. Secrets never
 * go into the user-data: they are files pushed through the LXD API (root-owned, 0600 unless
 * told otherwise), and the first-boot commands wait for them.
 * Every module's deployment construct is built from this one. The LXD resources themselves
 * come from the host's provider dialect (lxd-dialect.ts), with the same props for both majors.
 */
import { createHash } from "node:crypto";
import { Construct } from "constructs";
import { Fn, Token, Tokenization } from "cdktf";
import { Node } from "../../gen/providers/consul/node";
import { Service } from "../../gen/providers/consul/service";
import { AclPolicy } from "../../gen/providers/consul/acl-policy";
import { AclToken } from "../../gen/providers/consul/acl-token";
import { DataConsulAclTokenSecretId } from "../../gen/providers/consul/data-consul-acl-token-secret-id";
import type { Host } from "../../lib/host";
import type { StaticAddress } from "../../lib/address-plan";
import { renderCloudInit, CloudInitFile } from "../../lib/render/cloud-init";
import { renderNftables, FirewallRule } from "../../lib/render/nftables";
import { ConsulReadAccess, CONSUL_TOKEN_PATH, renderConsulReadPolicy } from "../../lib/render/consul-acl";
import { WatchedTemplate, consulTemplateFiles } from "../../lib/render/consul-template";
import { SECRET_MODE_PATTERN, SecretFile, secretsWaitCommand } from "../../lib/render/secret-files";
import { terraformLiteral } from "../../lib/terraform-literal";
import { Problems } from "../../lib/problems";
import { ContainerRevision } from "./container-revision";
import { LxdDevice, LxdFileResource, LxdInstanceResource, LxdVolumeResource, lxdDialect } from "./lxd-dialect";

/**
 * The stock image: Debian 12 with cloud-init, from the `images` remote (provider 3.x: the
 * host's image server; provider 1.x: the remote of that name in the lxc client configuration).
 */
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

/** consul-template in the container: its templates, and what they read from Consul. */
export interface ContainerConsulTemplate {
  readonly templates: readonly WatchedTemplate[];
  /**
   * The KV prefixes (and catalog) the templates read. With ACLs on the host, the container's
   * token can read exactly these and write nothing.
   */
  readonly reads: ConsulReadAccess;
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
  /** Files cloud-init writes. Never a secret: whatever is in the user-data, every user in the container can read. @default none */
  readonly files?: readonly CloudInitFile[];
  /**
   * Secret files, pushed through the LXD API once the container runs (owned by root, mode 0600
   * by default); `commands` run only once all of them have arrived. Their content changing
   * replaces the container (the volumes stay), as a change of the user-data does.
   * @default none
   */
  readonly secrets?: readonly SecretFile[];
  /**
   * consul-template's configuration, templates and unit, written after `files`. With ACLs on
   * the host (`host.consul.acl`), the container gets a read-only Consul token of its own, as a
   * pushed secret file that consul-template reads. Starting it is left to `commands`.
   * @default no consul-template
   */
  readonly consulTemplate?: ContainerConsulTemplate;
  /** Commands run once at first boot, after files are written (and the secrets have arrived). @default none */
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
  /** `lxd_instance` (provider 3.x) or `lxd_container` (1.x). */
  readonly instance: LxdInstanceResource;
  readonly host: Host;
  readonly address: StaticAddress;
  readonly name: string;
  /** `lxd_storage_volume` (provider 3.x) or `lxd_volume` (1.x), one per persistent volume. */
  readonly volumes: LxdVolumeResource[];
  /** The Consul service name, when registered. */
  readonly serviceName?: string;
  /** The rendered user-data, for tests and validators. */
  readonly userData: string;
  /**
   * Holds what the container is built from (image, user-data, and with provider 3.x its
   * devices). LXD updates user-data in place and cloud-init runs it only at the next boot, so
   * a change replaces the container instead; the storage volumes stay.
   */
  readonly revision: ContainerRevision;
  /** The pushed secret files by name where they are resources of their own (`lxd_instance_file`, 3.x); with 1.x they are `file` blocks of the container. */
  readonly secretFiles: Readonly<Record<string, LxdFileResource>>;
  private readonly devices: LxdDevice[];
  private readonly volumeProps?: readonly PersistentVolume[];

  constructor(scope: Construct, id: string, props: ServiceContainerProps) {
    super(scope, id);
    const { host } = props;
    this.host = host;
    this.name = props.name;
    this.volumeProps = props.volumes;
    const attached = props.attachVolumes ?? [];
    const problems = new Problems();
    attached.forEach((v, i) => {
      problems.check(/^[a-z0-9][a-z0-9-]*$/.test(v.name), `attachVolumes[${i}].name`, `must be lower-case letters, digits and dashes, got ${JSON.stringify(v.name)}`);
      problems.check(attached.findIndex((o) => o.name === v.name) === i, `attachVolumes[${i}].name`, `${JSON.stringify(v.name)} is used twice; names must be unique`);
      problems.check(v.path.startsWith("/"), `attachVolumes[${i}].path`, `must be an absolute path, got ${JSON.stringify(v.path)}`);
    });
    if (props.consulTemplate) {
      const { keyPrefixes, catalog } = props.consulTemplate.reads;
      problems.check(keyPrefixes.length > 0 || catalog === true, "consulTemplate.reads", "must name the KV prefixes (or the catalog) the templates read; with Consul ACLs that is all the container's token may read");
      keyPrefixes.forEach((prefix, i) =>
        problems.check(/^[A-Za-z0-9_.-]+(\/[A-Za-z0-9_.-]+)*\/?$/.test(prefix), `consulTemplate.reads.keyPrefixes[${i}]`, `must be a KV path such as "service/haproxy", got ${JSON.stringify(prefix)}`),
      );
    }
    const consulToken = props.consulTemplate && host.consul.acl ? consulReadToken(this, props.name, props.consulTemplate.reads) : undefined;
    const secrets = [...(props.secrets ?? []), ...(consulToken ? [{ name: "consul-token", path: CONSUL_TOKEN_PATH, content: consulToken }] : [])];
    const files = [
      ...(props.files ?? []),
      ...(props.consulTemplate
        ? consulTemplateFiles({ consulAddress: host.consul.address, tokenFile: consulToken && CONSUL_TOKEN_PATH, templates: props.consulTemplate.templates })
        : []),
    ];
    secrets.forEach((f, i) => {
      problems.check(/^[a-z0-9][a-z0-9-]*$/.test(f.name), `secrets[${i}].name`, `must be lower-case letters, digits and dashes, got ${JSON.stringify(f.name)}`);
      problems.check(secrets.findIndex((o) => o.name === f.name) === i, `secrets[${i}].name`, `${JSON.stringify(f.name)} is used twice; names must be unique`);
      problems.check(/^\/[^\s'"$`\\]+$/.test(f.path) && !f.path.endsWith("/"), `secrets[${i}].path`, `must be an absolute file path without spaces or quotes, got ${JSON.stringify(f.path)}`);
      problems.check(secrets.findIndex((o) => o.path === f.path) === i, `secrets[${i}].path`, `${JSON.stringify(f.path)} is used twice`);
      problems.check(f.mode === undefined || SECRET_MODE_PATTERN.test(f.mode), `secrets[${i}].mode`, `must give others nothing and the group at most read (0600, 0640, 0400 or 0440), got ${JSON.stringify(f.mode)}`);
      // The value itself is never echoed.
      problems.check(Token.isUnresolved(f.content), `secrets[${i}].content`, "must hold a Terraform token (a generated password or a sensitive variable); a literal would be written into cdktf.out");
    });
    problems.throwIfAny(`${this.node.path}: invalid ServiceContainer props`);
    this.address = host.addresses.reserve(props.name, props.hostPart, props.hostPartProp);
    (props.publicPorts ?? []).forEach((p, i) => {
      const [first, last] = typeof p.port === "number" ? [p.port, p.port] : p.port;
      host.publicPorts.reserve(this.node.path, p.protocol, first, last, `publicPorts[${i}]`);
    });
    const prebuilt = props.image !== undefined;
    const secretPaths = secrets.map((f) => f.path);

    this.userData = renderCloudInit({
      // The stock image has no nftables: without it the container would run with no firewall.
      packages: prebuilt ? [] : [...new Set(["nftables", ...(props.packages ?? [])])],
      files: [...files, { path: "/etc/nftables.conf", content: renderNftables({ rules: props.firewall }), permissions: "0755" }],
      commands: [
        // LXD writes the user-data seed (secrets included) world-readable; only root needs it.
        "chmod -R go= /var/lib/cloud/seed 2>/dev/null || true",
        // The firewall goes up first, and a container that cannot have one stops here.
        'command -v nft >/dev/null || { echo "nftables is missing: refusing to run without a firewall" >&2; exit 1; }',
        "nft -f /etc/nftables.conf",
        "systemctl enable nftables",
        ...(prebuilt ? [] : (props.stockImageCommands ?? [])),
        ...(secrets.length ? [secretsWaitCommand(secretPaths)] : []),
        ...(props.commands ?? []),
      ],
    });

    const dialect = lxdDialect(host);
    const protect = props.protectData ?? true;
    this.volumes = (props.volumes ?? []).map((v) =>
      dialect.volume(this, `volume-${v.name}`, host, { name: `${this.name}-${v.name}`, protect }),
    );

    this.devices = [
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
    this.revision = new ContainerRevision(this, "revision", {
      triggersReplace: {
        image,
        user_data: userData,
        ...dialect.replaceTriggers(this.literalDevices()),
        ...Object.fromEntries(secrets.map((f) => [`secret_${f.name}`, secretDigest(f.content)])),
      },
    });
    this.instance = dialect.instance(this, "instance", host, {
      name: props.name,
      image,
      userData,
      limits: props.limits ?? {},
      devices: this.devices,
      replaceTriggeredBy: this.revision.address,
      // Pre-built images read the user-data from the NoCloud seed LXD writes from the image's
      // templates, so nothing in them needs /dev/lxd/sock. The stock image's cloud-init finds
      // its LXD datasource through it (a socket that answers every user with the instance's
      // config): it stays on there, and holds nothing secret, since secrets are pushed files.
      devlxd: !prebuilt,
    });

    this.secretFiles = dialect.instanceFiles(
      this,
      host,
      this.instance,
      secrets.map((f) => ({
        name: f.name,
        containerName: props.name,
        path: f.path,
        content: terraformLiteral(f.content),
        mode: f.mode ?? "0600",
        uid: 0,
        gid: 0,
        // A replaced container gets its secrets again in the same apply.
        replaceTriggeredBy: this.revision.address,
      })),
    );

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

  /**
   * Adds devices to the container (with provider 1.x, TCP listeners registered in the same
   * stack as the ingress proxy arrive this way).
   */
  addDevices(devices: readonly LxdDevice[]): void {
    this.devices.push(...devices);
    const dialect = lxdDialect(this.host);
    this.instance.putDevice(this.devices.map((d) => ({ name: d.name, type: d.type, properties: { ...d.properties } })));
    this.revision.setTriggers(dialect.replaceTriggers(this.literalDevices()));
  }

  /**
   * The devices with this container's own volumes by their literal names, so that the
   * revision does not wait for (or, in a plan, reveal nothing about) the volume resources.
   */
  private literalDevices(): LxdDevice[] {
    const own = new Map((this.volumeProps ?? []).map((v) => [`data-${v.name}`, `${this.name}-${v.name}`]));
    return this.devices.map((d) => (own.has(d.name) ? { ...d, properties: { ...d.properties, source: own.get(d.name)! } } : d));
  }
}

/**
 * A read-only Consul token for one container: its policy reads what `access` names, and the
 * token's secret comes from Consul at apply time (it never appears in the synthesized stack).
 * Policy and token are named after the container, which is unique on the host.
 */
function consulReadToken(scope: Construct, containerName: string, access: ConsulReadAccess): string {
  const policy = new AclPolicy(scope, "consul-policy", {
    name: `${containerName}-consul-read`,
    description: `consul-template in the container ${containerName}: read-only`,
    rules: renderConsulReadPolicy(access),
  });
  const token = new AclToken(scope, "consul-token", {
    description: `consul-template in the container ${containerName}`,
    policies: [policy.name],
  });
  return new DataConsulAclTokenSecretId(scope, "consul-token-secret", { accessorId: token.accessorId }).secretId;
}

/**
 * A digest of a secret's content, so that the revision holds no secret of its own: the
 * Terraform values it holds hashed by Terraform, the literal text around them hashed here
 * (Terraform functions refuse text with double quotes, so the whole cannot go to sha256()).
 */
function secretDigest(content: string): string {
  const fragments = Tokenization.reverseString(content);
  const literal = createHash("sha256").update(JSON.stringify(fragments.literals)).digest("hex");
  const values = fragments.tokens.map((t) => Token.asString(t));
  return `${Fn.sha256(Fn.join("\n", values))}:${literal}`;
}

function proxyDevices(host: Host, address: StaticAddress, ports: readonly PublicPort[]): LxdDevice[] {
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
