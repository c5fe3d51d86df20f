/**
 * Element Web, the project's browser client, at `https://element.<domain>`: nginx in its own
 * container serving a pinned Element release with a config.json locked to the project's
 * homeserver. It needs the ingress proxy (it registers an HAProxy backend and a host route;
 * the certificate for `element.<domain>` is requested by the project) and reaches nobody itself.
 * Changing the version (or anything else the container is built from) replaces the container;
 * it keeps no data.
 */
import { Construct } from "constructs";
import type { Host } from "../../lib/host";
import { PROJECT_ID_MAX_LENGTH, Problems, checkResourceName } from "../../lib/problems";
import { renderElementConfig, validateElementConfigOptions, ElementConfigOptions } from "../../lib/render/element";
import { staticAppProvisioning, validatePinnedRelease } from "../../lib/render/static-site";
import { ServiceContainer } from "../core/service-container";
import { IngressBackend } from "../modules/ingress-backend";
import { IngressRoute } from "../modules/ingress-route";

/** The Element Web release deployed by default, with the SHA-256 of its `element-v<version>.tar.gz`. */
export const ELEMENT_RELEASE = {
  version: "1.12.24",
  sha256: "ec488fb01ce4e969e0a4fde7d83277a10a17309598459bf6445060ed393c2a42",
} as const;

/** Where Element publishes the release tarball of a version. */
export const elementDownloadUrl = (version: string): string =>
  `https://github.com/element-hq/element-web/releases/download/v${version}/element-v${version}.tar.gz`;

export const ELEMENT_DEFAULT_HOST_PART = 21;

/** The container and release settings, plus every config.json option of ElementConfigOptions. */
export interface ElementWebProps extends ElementConfigOptions {
  readonly host: Host;
  /** Prefix of the default name. @default "matrix" */
  readonly projectId?: string;
  /** Container and Consul service name (also the HAProxy backend). @default "<projectId>-element" */
  readonly name?: string;
  /** Last octet of the container's static address. @default 21 */
  readonly hostPart?: number;
  /** Element Web release. @default ELEMENT_RELEASE.version */
  readonly version?: string;
  /** SHA-256 of the release tarball; required with any version but the default. @default ELEMENT_RELEASE.sha256 */
  readonly sha256?: string;
  /**
   * Where the stock image downloads the tarball at first boot: https, or a `file:///` path inside the
   * container (offline hosts: e.g. a directory a disk device of one of the host's LXD profiles mounts).
   * Unused with `image`.
   * @default the GitHub release asset of `version` (elementDownloadUrl)
   */
  readonly downloadUrl?: string;
  /**
   * Pre-built image with Element unpacked at /var/www/element and nginx installed; nothing is
   * downloaded then, config.json is still written.
   * @default the stock Debian image, which downloads the pinned release
   */
  readonly image?: string;
  /** Passed to the container; Element keeps no data, so no volume is protected today. @default true */
  readonly protectData?: boolean;
}

export class ElementWeb extends Construct {
  readonly container: ServiceContainer;
  /** Container, Consul service and HAProxy backend name. */
  readonly name: string;
  /** `element.<domain>` */
  readonly hostName: string;
  readonly url: string;
  readonly version: string;
  /** The config.json text written into the bundle. */
  readonly configJson: string;
  constructor(scope: Construct, id: string, props: ElementWebProps) {
    super(scope, id);
    const problems = new Problems();
    if (props.projectId !== undefined) checkResourceName(problems, "projectId", props.projectId, PROJECT_ID_MAX_LENGTH);
    if (props.name !== undefined) checkResourceName(problems, "name", props.name, 63);
    // Everything but the container and release settings is a config.json option.
    const { host, projectId, name, hostPart, version, sha256: releaseSha256, downloadUrl: releaseUrl, image, protectData, ...configOptions } = props;
    validateElementConfigOptions(configOptions, problems);
    validatePinnedRelease(props, ELEMENT_RELEASE.version, problems);
    problems.throwIfAny(`${this.node.path}: invalid ElementWeb props`);

    this.name = props.name ?? `${props.projectId ?? "matrix"}-element`;
    this.hostName = `element.${props.domain}`;
    this.url = `https://${this.hostName}`;
    this.version = props.version ?? ELEMENT_RELEASE.version;
    const sha256 = props.sha256 ?? ELEMENT_RELEASE.sha256;
    const downloadUrl = props.downloadUrl ?? elementDownloadUrl(this.version);
    this.configJson = renderElementConfig(configOptions);

    const app = staticAppProvisioning({
      app: "element",
      release: { version: this.version, sha256, url: downloadUrl },
      siteName: this.hostName,
      site: { serverName: this.hostName, fallback: "404", noCachePaths: ["/index.html", "/version", "/config.json", `/config.${this.hostName}.json`] },
      // Element reads config.<hostname>.json first and falls back to config.json.
      bundleFiles: { "config.json": this.configJson, [`config.${this.hostName}.json`]: this.configJson },
    });

    this.container = new ServiceContainer(this, "container", {
      host: props.host,
      name: this.name,
      hostPart: props.hostPart ?? ELEMENT_DEFAULT_HOST_PART,
      image: props.image,
      packages: app.packages,
      stockImageCommands: app.stockImageCommands,
      files: app.files,
      commands: app.commands,
      // The ingress proxy is the only client; it sits on the host network.
      firewall: [{ protocol: "tcp", ports: [80], from: props.host.networkCidrs, comment: "http from the host network (ingress proxy)" }],
      service: { name: this.name, port: 80, tags: ["webserver"] },
      protectData: props.protectData,
    });


    new IngressBackend(this, "ingress-backend", { service: this.name });
    new IngressRoute(this, "ingress-route", { name: `${this.name}-host`, host: this.hostName, action: { backend: this.name } });
  }
}
