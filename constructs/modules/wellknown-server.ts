/**
 * The shared well-known server, deployed once per host: nginx in its own container answers
 * `/.well-known/…` on projects' bare domains (Matrix client/server discovery, with the CORS
 * header clients need). Projects register rules with WellknownJsonRule and WellknownRedirectRule;
 * consul-template renders them from the host's Consul KV into the nginx site and reloads nginx.
 * It needs the host's Consul server and the ingress proxy, with which it registers itself as a
 * backend through Terraform; the projects route their paths to it. It keeps no data.
 */
import { Construct } from "constructs";
import { KV_PREFIX } from "../../lib/kv";
import type { Host } from "../../lib/host";
import { Problems, isResourceName } from "../../lib/problems";
import {
  consulTemplateDownload,
  CONSUL_TEMPLATE_PACKAGES,
  CONSUL_TEMPLATE_START,
} from "../../lib/render/consul-template";
import { renderWellknownSite, renderWellknownSiteTemplate } from "../../lib/render/wellknown";
import { ServiceContainer } from "../core/service-container";
import { IngressBackend } from "./ingress-backend";
import { IngressProxyRef, fromIngressProxy } from "./ingress-proxy";

/** What registration constructs need to know about a well-known server, possibly deployed by another stack. */
export interface WellknownRef {
  readonly host: Host;
  /** Consul service name of the server, which is also its HAProxy backend name. */
  readonly serviceName: string;
}

export const WELLKNOWN_DEFAULT_NAME = "wellknown";
export const WELLKNOWN_DEFAULT_HOST_PART = 16;
export const WELLKNOWN_SITE_PATH = "/etc/nginx/sites-available/wellknown";
export const WELLKNOWN_RELOAD_SCRIPT = "/usr/local/sbin/wellknown-reload-nginx";

export interface WellknownServerProps {
  readonly host: Host;
  /** The ingress proxy, the only client the firewall admits. */
  readonly ingress: IngressProxyRef;
  /** Container and Consul service name (also the HAProxy backend). @default "wellknown" */
  readonly name?: string;
  /** Last octet of the container's static address. @default 16 */
  readonly hostPart?: number;
  /**
   * Pre-built image with nginx and consul-template (at /usr/local/bin) installed; nothing is
   * installed or downloaded then.
   * @default the stock Debian image, which installs nginx and downloads the pinned consul-template
   */
  readonly image?: string;
}

// A rendered site that nginx refuses must not take the server down, nor stop consul-template
// (which exits when a command fails): keep the running configuration and say why in the journal.
const RELOAD_SCRIPT = `#!/bin/sh
# Run by consul-template after it renders ${WELLKNOWN_SITE_PATH}.
if nginx -t -q; then
  exec systemctl reload-or-restart nginx
fi
echo "wellknown: nginx rejected the rendered site; keeping the running configuration" >&2
nginx -t >&2 || true
exit 0
`;

const NAME_RULE = "lower-case letters, digits and dashes, starting with a letter, at most 63 characters";

function checkName(problems: Problems, name: string, prop = "name"): void {
  problems.check(isResourceName(name, 63), prop, `must be ${NAME_RULE}, got ${JSON.stringify(name)}`);
}

export class WellknownServer extends Construct implements WellknownRef {
  /** A server deployed elsewhere (another stack, or another tool) on `host`. */
  static reference(host: Host, options: { readonly name?: string } = {}): WellknownRef {
    const serviceName = options.name ?? WELLKNOWN_DEFAULT_NAME;
    const problems = new Problems();
    checkName(problems, serviceName);
    problems.throwIfAny("invalid WellknownServer reference");
    return { host, serviceName };
  }

  readonly host: Host;
  readonly serviceName: string;
  readonly container: ServiceContainer;

  constructor(scope: Construct, id: string, props: WellknownServerProps) {
    super(scope, id);
    const name = props.name ?? WELLKNOWN_DEFAULT_NAME;
    const problems = new Problems();
    checkName(problems, name);
    if (props.image !== undefined) problems.check(props.image.trim() !== "", "image", "must name an image, got an empty string");
    problems.throwIfAny(`${this.node.path}: invalid WellknownServer props`);

    this.host = props.host;
    this.serviceName = name;

    this.container = new ServiceContainer(this, "container", {
      host: props.host,
      name,
      hostPart: props.hostPart ?? WELLKNOWN_DEFAULT_HOST_PART,
      hostPartProp: "hostPart",
      image: props.image,
      packages: ["nginx", ...CONSUL_TEMPLATE_PACKAGES],
      stockImageCommands: consulTemplateDownload(),
      files: [
        // nginx serves an empty (all-404) site until consul-template has rendered the real one.
        { path: WELLKNOWN_SITE_PATH, content: renderWellknownSite([]) },
        { path: WELLKNOWN_RELOAD_SCRIPT, content: RELOAD_SCRIPT, permissions: "0755" },
      ],
      consulTemplate: {
        templates: [
          {
            name: "wellknown-site.ctmpl",
            template: renderWellknownSiteTemplate(),
            destination: WELLKNOWN_SITE_PATH,
            command: WELLKNOWN_RELOAD_SCRIPT,
          },
        ],
        reads: { keyPrefixes: [KV_PREFIX.wellknown] },
      },
      commands: [
        "rm -f /etc/nginx/sites-enabled/default",
        `ln -sfn ${WELLKNOWN_SITE_PATH} /etc/nginx/sites-enabled/wellknown`,
        "systemctl enable nginx",
        "systemctl reload-or-restart nginx",
        CONSUL_TEMPLATE_START,
      ],
      firewall: [fromIngressProxy(props.ingress, 80, "HTTP")],
      service: { name, port: 80, tags: ["webserver"] },
    });

    new IngressBackend(this, "ingress-backend", { service: name });
  }
}
