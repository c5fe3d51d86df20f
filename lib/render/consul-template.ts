/**
 * consul-template inside a module container: it watches the host's Consul KV and re-renders
 * service configuration (haproxy.cfg, nginx sites, turnserver.conf, …) when projects register
 * or remove entries, then runs a reload command. This file renders its configuration, its
 * systemd unit, and the pinned download used on the stock image (pre-built images carry it).
 */
import type { CloudInitFile } from "./cloud-init";
import versions from "../../versions.json";

export interface WatchedTemplate {
  /** File name of the template under /etc/consul-template/templates. */
  readonly name: string;
  /** Template text (consul-template's Go template syntax). */
  readonly template: string;
  readonly destination: string;
  /** Shell command run after each render. @default none */
  readonly command?: string;
  /** @default "0644" */
  readonly perms?: string;
}

export interface ConsulTemplateOptions {
  /** `host:port` of the Consul HTTP API. */
  readonly consulAddress: string;
  /**
   * File holding the Consul ACL token consul-template reads with (a pushed secret; see
   * consul-acl.ts). consul-template reads it at start and on every reload.
   * @default none (the agent's anonymous token: works only on a host without ACLs)
   */
  readonly tokenFile?: string;
  readonly templates: readonly WatchedTemplate[];
}

export const CONSUL_TEMPLATE_DIR = "/etc/consul-template";

const hclString = (value: string): string => JSON.stringify(value);

export function renderConsulTemplateConfig(options: ConsulTemplateOptions): string {
  const blocks = options.templates.map((t) =>
    [
      "template {",
      `  source      = ${hclString(`${CONSUL_TEMPLATE_DIR}/templates/${t.name}`)}`,
      `  destination = ${hclString(t.destination)}`,
      `  perms       = ${t.perms ?? "0644"}`,
      ...(t.command ? [`  command     = ${hclString(t.command)}`, '  command_timeout = "120s"'] : []),
      "}",
    ].join("\n"),
  );
  return [
    "consul {",
    `  address = ${hclString(options.consulAddress)}`,
    ...(options.tokenFile ? [`  token_file = ${hclString(options.tokenFile)}`] : []),
    "  retry {",
    "    enabled     = true",
    "    attempts    = 0",
    '    backoff     = "250ms"',
    '    max_backoff = "1m"',
    "  }",
    "}",
    "wait {",
    '  min = "2s"',
    '  max = "10s"',
    "}",
    ...blocks,
    "",
  ].join("\n");
}

// consul-template stops on its kill_signal, SIGINT, and then exits with status 12; it ignores
// systemd's default SIGTERM, so every stop (and every container stop or replacement) would wait
// for the 90 s stop timeout and a SIGKILL.
const UNIT = `[Unit]
Description=consul-template: render service configuration from Consul KV
Wants=network-online.target
After=network-online.target

[Service]
ExecStart=/usr/local/bin/consul-template -config=${CONSUL_TEMPLATE_DIR}/config.hcl
ExecReload=/bin/kill -HUP $MAINPID
KillSignal=SIGINT
SuccessExitStatus=12
Restart=always
RestartSec=5

[Install]
WantedBy=multi-user.target
`;

export const CONSUL_TEMPLATE_UNIT_PATH = "/etc/systemd/system/consul-template.service";

/** Files that install consul-template's configuration, templates and unit. */
export function consulTemplateFiles(options: ConsulTemplateOptions): CloudInitFile[] {
  return [
    { path: `${CONSUL_TEMPLATE_DIR}/config.hcl`, content: renderConsulTemplateConfig(options) },
    ...options.templates.map((t) => ({ path: `${CONSUL_TEMPLATE_DIR}/templates/${t.name}`, content: t.template })),
    { path: CONSUL_TEMPLATE_UNIT_PATH, content: UNIT },
  ];
}

export const CONSUL_TEMPLATE_START = "systemctl daemon-reload; systemctl enable --now consul-template";

/**
 * Stock-image command: download the pinned release and install it only if its sha256 matches.
 * One `&&` chain that ends the runcmd script on failure, because runcmd otherwise carries on
 * after a failed line.
 */
export function consulTemplateDownload(version = versions.consulTemplate.version, sha256 = versions.consulTemplate.linuxAmd64Sha256): string[] {
  const zip = `/tmp/consul-template_${version}_linux_amd64.zip`;
  return [
    [
      `curl -fsSL -o ${zip} https://releases.hashicorp.com/consul-template/${version}/consul-template_${version}_linux_amd64.zip`,
      `echo "${sha256}  ${zip}" | sha256sum -c -`,
      `unzip -o ${zip} consul-template -d /usr/local/bin`,
    ].join(" && ") + ` && rm -f ${zip} || { rm -f ${zip}; echo "consul-template ${version}: download or sha256 check failed" >&2; exit 1; }`,
  ];
}

/** Debian packages the download needs on the stock image. */
export const CONSUL_TEMPLATE_PACKAGES = ["curl", "unzip"];
