/**
 * The ingress proxy, deployed once per host: HAProxy terminates TLS on the host's public ports
 * 80 and 443 and routes by host and path to Consul catalog services, certbot obtains and renews
 * one Let's Encrypt certificate per requested domain (HTTP-01 through HAProxy), and
 * consul-template re-renders haproxy.cfg, the issuance script and the firewall whenever a
 * project registers something in the host's Consul KV (IngressBackend, IngressRoute,
 * CertificateDomains, IngressTcpListener). It needs the host's Consul server (KV and DNS).
 * Certificates live on storage volumes that survive replacing the container; the full chains
 * and keys on the `shared-certs` volume are for coturn, which mounts it read-only.
 */
import { Construct } from "constructs";
import type { ITerraformDependable } from "cdktf";
import type { Host } from "../../lib/host";
import { addressCidrs, StaticAddress } from "../../lib/address-plan";
import { Problems, isResourceName } from "../../lib/problems";
import { INGRESS_PUBLIC_PORTS } from "../../lib/rules";
import { KV_PREFIX } from "../../lib/kv";
import type { FirewallRule } from "../../lib/render/nftables";
import {
  CONSUL_TEMPLATE_PACKAGES,
  CONSUL_TEMPLATE_START,
  consulTemplateDownload,
} from "../../lib/render/consul-template";
import {
  HAPROXY_CERT_DIR,
  HAPROXY_CONFIG_PATH,
  renderHaproxyTemplate,
  renderIngressNftablesTemplate,
} from "../../lib/render/haproxy";
import {
  CERTBOT_ISSUE_SCRIPT,
  CERTBOT_ISSUE_UNIT,
  LETSENCRYPT_DIR,
  SHARED_CERT_DIR,
  certbotCommands,
  certbotFiles,
  renderCertbotIssueTemplate,
} from "../../lib/render/certbot";
import { ServiceContainer } from "../core/service-container";

export const INGRESS_PROXY_DEFAULT_NAME = "ingress-proxy";
export const INGRESS_PROXY_DEFAULT_HOST_PART = 10;

/** What registrations need from an ingress proxy, whether this stack deployed it or another. */
export interface IngressProxyRef {
  readonly host: Host;
  /** The LXD container, e.g. for proxy devices of TCP listeners. */
  readonly containerName: string;
  readonly address: StaticAddress;
  /** LXD storage volume with `<fqdn>.fullchain.pem` / `<fqdn>.key.pem` for coturn (mount read-only). */
  readonly sharedCertsVolume: string;
  /** The container resource when it is in the same stack, so registrations can wait for it. @default none */
  readonly instance?: ITerraformDependable;
  /** The container when it is in the same stack, so registrations can add devices to it. @default none */
  readonly container?: ServiceContainer;
}

export interface IngressProxyReferenceOptions {
  /** @default "ingress-proxy" */
  readonly name?: string;
  /** @default 10 */
  readonly hostPart?: number;
}

export interface IngressProxyProps {
  readonly host: Host;
  /** Container and Consul service name. @default "ingress-proxy" */
  readonly name?: string;
  /** Last octet of the static address (also the last IPv6 hextet). @default 10 */
  readonly hostPart?: number;
  /**
   * Pre-built image carrying haproxy, certbot, openssl, nftables and consul-template at
   * /usr/local/bin/consul-template; nothing is installed then.
   * @default the stock Debian image, with the packages and a sha256-pinned consul-template installed at first boot
   */
  readonly image?: string;
  /** Refuse to destroy the certificate volumes. @default true */
  readonly protectData?: boolean;
  /** ACME directory URL, e.g. Let's Encrypt's staging directory. @default Let's Encrypt production */
  readonly acmeServer?: string;
}

const sharedCertsVolumeName = (name: string): string => `${name}-shared-certs`;

/** 80 and 443 from anywhere; nothing else (HAProxy's statistics page listens on loopback only). */
export function ingressFirewall(): FirewallRule[] {
  return [{ protocol: "tcp", ports: [80, 443], comment: "HTTP and HTTPS from anywhere" }];
}

/**
 * The firewall rule of a backend: `port` from the ingress proxy's addresses only, so no other
 * container on the bridge reaches the service past the proxy's rules and forwarded headers.
 */
export function fromIngressProxy(ingress: IngressProxyRef, port: number, what: string): FirewallRule {
  return { protocol: "tcp", ports: [port], from: addressCidrs(ingress.address), comment: `${what} from the ingress proxy only` };
}

export class IngressProxy extends Construct implements IngressProxyRef {
  /** An ingress proxy deployed by another stack on `host`; creates no resources. */
  static reference(host: Host, options: IngressProxyReferenceOptions = {}): IngressProxyRef {
    const name = options.name ?? INGRESS_PROXY_DEFAULT_NAME;
    const problems = new Problems();
    problems.check(isResourceName(name, 63), "name", `must be lower-case letters, digits and dashes, starting with a letter (at most 63), got ${JSON.stringify(name)}`);
    problems.throwIfAny("invalid IngressProxy.reference options");
    // Reserving the address keeps this stack from giving the proxy's address to another container.
    const address = host.addresses.reserve(name, options.hostPart ?? INGRESS_PROXY_DEFAULT_HOST_PART, "hostPart");
    return { host, containerName: name, address, sharedCertsVolume: sharedCertsVolumeName(name) };
  }

  readonly host: Host;
  readonly containerName: string;
  readonly address: StaticAddress;
  readonly sharedCertsVolume: string;
  readonly instance: ITerraformDependable;
  readonly container: ServiceContainer;
  /** The consul-template templates, for tests and validators. */
  readonly haproxyTemplate: string;
  readonly nftablesTemplate: string;
  readonly certbotIssueTemplate: string;

  constructor(scope: Construct, id: string, props: IngressProxyProps) {
    super(scope, id);
    const { host } = props;
    const name = props.name ?? INGRESS_PROXY_DEFAULT_NAME;
    const problems = new Problems();
    problems.check(isResourceName(name, 63), "name", `must be lower-case letters, digits and dashes, starting with a letter (at most 63), got ${JSON.stringify(name)}`);
    if (props.acmeServer !== undefined) {
      problems.check(/^https:\/\/[^\s'"]+$/.test(props.acmeServer), "acmeServer", `must be an https URL of an ACME directory, got ${JSON.stringify(props.acmeServer)}`);
    }
    problems.throwIfAny(`${this.node.path}: invalid IngressProxy props`);

    const firewall = ingressFirewall();
    this.haproxyTemplate = renderHaproxyTemplate({
      dnsServer: `${host.consulIp}:${host.consul.dnsPort}`,
      dnsDomain: host.consul.dnsDomain,
      // ServiceContainer registers IPv4 addresses in the catalog, so that is what DNS answers.
      preferIpv6: false,
      listenIpv6: host.dualStack,
    });
    this.nftablesTemplate = renderIngressNftablesTemplate(firewall);
    this.certbotIssueTemplate = renderCertbotIssueTemplate({ acmeServer: props.acmeServer });

    this.container = new ServiceContainer(this, "container", {
      host,
      name,
      hostPart: props.hostPart ?? INGRESS_PROXY_DEFAULT_HOST_PART,
      hostPartProp: "hostPart",
      image: props.image,
      packages: ["haproxy", "certbot", "openssl", "nftables", ...CONSUL_TEMPLATE_PACKAGES],
      stockImageCommands: consulTemplateDownload(),
      files: certbotFiles(),
      consulTemplate: {
        templates: [
          {
            name: "haproxy.cfg.ctmpl",
            template: this.haproxyTemplate,
            destination: HAPROXY_CONFIG_PATH,
            // Debian's unit checks the configuration before reloading; a bad one keeps the old.
            command: "systemctl reload-or-restart haproxy.service",
          },
          {
            name: "certbot-issue.sh.ctmpl",
            template: this.certbotIssueTemplate,
            destination: CERTBOT_ISSUE_SCRIPT,
            perms: "0755",
            // Asynchronous: issuing several certificates can outlast consul-template's command timeout.
            command: `systemctl start --no-block ${CERTBOT_ISSUE_UNIT}`,
          },
          { name: "nftables.conf.ctmpl", template: this.nftablesTemplate, destination: "/etc/nftables.conf", perms: "0755", command: "nft -f /etc/nftables.conf" },
        ],
        reads: { keyPrefixes: [KV_PREFIX.haproxy, KV_PREFIX.certbot] },
      },
      // The fallback certificate exists before HAProxy gets a configuration with `crt`.
      commands: [...certbotCommands(), "systemctl enable haproxy.service", CONSUL_TEMPLATE_START],
      firewall,
      volumes: [
        { name: "certs", path: LETSENCRYPT_DIR },
        { name: "tls", path: HAPROXY_CERT_DIR },
        { name: "shared-certs", path: SHARED_CERT_DIR },
      ],
      publicPorts: [
        { protocol: "tcp", port: INGRESS_PUBLIC_PORTS.http },
        { protocol: "tcp", port: INGRESS_PUBLIC_PORTS.https },
      ],
      service: { name, port: 443, tags: ["ingress"] },
      protectData: props.protectData,
    });

    this.host = host;
    this.containerName = name;
    this.address = this.container.address;
    // A reference to the volume resource, so a container that attaches it waits for it.
    const shared = this.container.volumes.find((v) => v.nameInput === sharedCertsVolumeName(name));
    if (!shared) throw new Error(`${this.node.path}: the shared certificate volume is missing`);
    this.sharedCertsVolume = shared.name;
    this.instance = this.container.instance;
  }
}
