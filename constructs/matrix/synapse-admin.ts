/**
 * synapse-admin, the browser UI for Synapse's admin API, for the operator only: nginx in its own
 * container serving a pinned synapse-admin release whose config.json locks it to this project's
 * homeserver. It is deliberately not published through the ingress proxy (no route, no backend)
 * and its firewall admits only the admin networks; the admin's browser talks to Synapse's
 * internal listener directly, so Synapse must accept those networks on that port.
 * Changing the version (or anything else the container is built from) replaces the container.
 */
import { Construct } from "constructs";
import { Host, isIpv4, isIpv6 } from "../../lib/host";
import { PROJECT_ID_MAX_LENGTH, Problems, checkResourceName } from "../../lib/problems";
import { staticAppProvisioning, validatePinnedRelease } from "../../lib/render/static-site";
import { ServiceContainer } from "../core/service-container";

/** The synapse-admin release deployed by default, with the SHA-256 of its `synapse-admin-<version>.tar.gz`. */
export const SYNAPSE_ADMIN_RELEASE = {
  version: "0.10.3",
  sha256: "0998ee4e2d9e55d72c2d160fa70734a3484ebcf5b6f380204e19bc376f2d500d",
} as const;

/** Where synapse-admin (Awesome-Technologies) publishes the release tarball of a version. */
export const synapseAdminDownloadUrl = (version: string): string =>
  `https://github.com/Awesome-Technologies/synapse-admin/releases/download/${version}/synapse-admin-${version}.tar.gz`;

export const SYNAPSE_ADMIN_DEFAULT_HOST_PART = 22;

export interface SynapseAdminProps {
  readonly host: Host;
  /** Prefix of the default name. @default "matrix" */
  readonly projectId?: string;
  /** Container and Consul service name. @default "<projectId>-synapse-admin" */
  readonly name?: string;
  /** Last octet of the container's static address. @default 22 */
  readonly hostPart?: number;
  /** Synapse's internal client URL as the admin's browser reaches it, e.g. `http://10.10.1.20:8008`. */
  readonly homeserverUrl: string;
  /** synapse-admin release. @default SYNAPSE_ADMIN_RELEASE.version */
  readonly version?: string;
  /** SHA-256 of the release tarball; required with any version but the default. @default SYNAPSE_ADMIN_RELEASE.sha256 */
  readonly sha256?: string;
  /**
   * Where the stock image downloads the tarball at first boot: https, or a `file:///` path inside the
   * container (offline hosts: e.g. a directory a disk device of one of the host's LXD profiles mounts).
   * Unused with `image`.
   * @default the GitHub release asset of `version` (synapseAdminDownloadUrl)
   */
  readonly downloadUrl?: string;
  /** CIDRs (or addresses) allowed to reach the UI on port 80. @default the host network (host.networkCidrs) */
  readonly adminNetworks?: readonly string[];
  /**
   * Pre-built image with synapse-admin unpacked at /var/www/synapse-admin and nginx installed;
   * nothing is downloaded then, config.json is still written.
   * @default the stock Debian image, which downloads the pinned release
   */
  readonly image?: string;
}

/** An IPv4 or IPv6 address, optionally with a prefix length. */
export function isCidr(value: string): boolean {
  const [address, prefix, ...rest] = value.split("/");
  if (rest.length > 0) return false;
  const v4 = isIpv4(address);
  if (!v4 && !isIpv6(address)) return false;
  if (prefix === undefined) return true;
  return /^\d{1,3}$/.test(prefix) && Number(prefix) <= (v4 ? 32 : 128);
}

export class SynapseAdmin extends Construct {
  readonly container: ServiceContainer;
  readonly name: string;
  readonly version: string;
  /** Where the admin opens the UI (from an admin network). */
  readonly url: string;
  readonly configJson: string;
  readonly adminNetworks: readonly string[];
  constructor(scope: Construct, id: string, props: SynapseAdminProps) {
    super(scope, id);
    const problems = new Problems();
    if (props.projectId !== undefined) checkResourceName(problems, "projectId", props.projectId, PROJECT_ID_MAX_LENGTH);
    if (props.name !== undefined) checkResourceName(problems, "name", props.name, 63);
    problems.check(
      /^https?:\/\/[^\s/'"]+(:\d+)?\/?$/.test(props.homeserverUrl ?? "") && URL.canParse(props.homeserverUrl),
      "homeserverUrl",
      `must be Synapse's base URL without a path, such as http://10.10.1.20:8008, got ${JSON.stringify(props.homeserverUrl)}`,
    );
    if (props.adminNetworks !== undefined) {
      problems.check(props.adminNetworks.length > 0, "adminNetworks", "must list at least one network; leave it out for the host network");
      props.adminNetworks.forEach((cidr, i) =>
        problems.check(isCidr(cidr), `adminNetworks[${i}]`, `must be an IPv4 or IPv6 CIDR such as 10.10.1.0/24 or fd00::/64, got ${JSON.stringify(cidr)}`),
      );
    }
    validatePinnedRelease(props, SYNAPSE_ADMIN_RELEASE.version, problems);
    problems.throwIfAny(`${this.node.path}: invalid SynapseAdmin props`);

    this.name = props.name ?? `${props.projectId ?? "matrix"}-synapse-admin`;
    this.version = props.version ?? SYNAPSE_ADMIN_RELEASE.version;
    const sha256 = props.sha256 ?? SYNAPSE_ADMIN_RELEASE.sha256;
    this.adminNetworks = [...(props.adminNetworks ?? props.host.networkCidrs)];
    // synapse-admin's supported lock: with a single restrictBaseUrl the login form has no server field.
    this.configJson = `${JSON.stringify({ restrictBaseUrl: props.homeserverUrl.replace(/\/$/, "") }, null, 2)}\n`;

    const app = staticAppProvisioning({
      app: "synapse-admin",
      release: { version: this.version, sha256, url: props.downloadUrl ?? synapseAdminDownloadUrl(this.version) },
      siteName: "synapse-admin",
      site: { defaultServer: true, fallback: "index" },
      bundleFiles: { "config.json": this.configJson },
    });

    this.container = new ServiceContainer(this, "container", {
      host: props.host,
      name: this.name,
      hostPart: props.hostPart ?? SYNAPSE_ADMIN_DEFAULT_HOST_PART,
      image: props.image,
      packages: app.packages,
      stockImageCommands: app.stockImageCommands,
      files: app.files,
      commands: app.commands,
      firewall: [{ protocol: "tcp", ports: [80], from: this.adminNetworks, comment: "synapse-admin UI from the admin networks only" }],
      service: { name: this.name, port: 80, tags: ["webserver", "admin"] },
    });
    this.url = `http://${this.container.address.ipv4}/`;

  }
}
