/**
 * The Synapse homeserver of one Matrix project, in its own container at `matrix.<domain>`. It
 * needs a PostgreSQL database (C-collated, from the postgres module), a TURN server's domain,
 * ports and shared secret (from the coturn module), and the ingress proxy, where it registers
 * its backend and routes: `/_matrix` and `/_synapse/client` on `matrix.<domain>` go to Synapse,
 * `/_synapse/admin` is answered 403 on every host. The certificate for `matrix.<domain>` is the
 * caller's to request. Media, signing key and bootstrap markers live on a storage volume, so
 * changing the version or the configuration replaces the container and keeps the data.
 */
import { Construct } from "constructs";
import { Fn, Op, Token } from "cdktf";
import { Password } from "@cdktf/provider-random/lib/password";
import type { Host } from "../../lib/host";
import { DOMAIN_RULE, PORT_RULE, Problems, isDomainName, EMAIL_RULE, isEmail, isPort, isResourceName, quote } from "../../lib/problems";
import { LOCALPART_RULE, SINGLE_LINE_RULE, SYNAPSE_VERSION_PATTERN, isMatrixLocalpart, isSingleLine } from "../../lib/rules";
import {
  DatabaseConnection,
  SmtpOptions,
  SYNAPSE_BOOTSTRAP_START,
  SYNAPSE_INSTALL_PACKAGES,
  SYNAPSE_PATHS,
  SYNAPSE_PORT,
  PASSWORD_POLICY,
  PASSWORD_RULES,
  HomeserverOptions,
  synapseFiles,
  synapseSecretFiles,
} from "../../lib/render/synapse";
import { ServiceContainer } from "../core/service-container";
import { IngressBackend } from "../modules/ingress-backend";
import { IngressRoute } from "../modules/ingress-route";
import { IngressProxyRef, fromIngressProxy } from "../modules/ingress-proxy";

/** The Synapse release installed on the stock image. */
export const SYNAPSE_VERSION = "1.163.2";

export interface SynapseTurnProps {
  /** The TURN server's public domain name. */
  readonly domain: string;
  /** @default 3478 */
  readonly listeningPort?: number;
  /** @default 5349 */
  readonly tlsListeningPort?: number;
  /** coturn's `static-auth-secret` (a token). */
  readonly sharedSecret: string;
}

export interface SynapseProps {
  readonly host: Host;
  /** The ingress proxy, which reaches Synapse's port 8008 (with the admin networks). */
  readonly ingress: IngressProxyRef;
  /** The project's id: lower-case letters, digits and dashes, at most 15 characters. */
  readonly projectId: string;
  /** Container and Consul service name; also prefixes the ingress ACL names. @default "<projectId>-synapse" */
  readonly name?: string;
  /** Last octet of the container's static address. @default 20 */
  readonly hostPart?: number;
  /**
   * A pre-built image carrying matrix.org's `matrix-synapse-py3` package with its unit disabled
   * and Synapse `version`. A new alias or a new `version` replaces the container; with an
   * unchanged alias, point it at the image of the new version first.
   * @default the stock Debian 12 image, which installs `version` from matrix.org's repository
   */
  readonly image?: string;
  /** Synapse release (`x.y.z`); changing it replaces the container, never the data volume. @default SYNAPSE_VERSION */
  readonly version?: string;
  /** The server name: users are `@user:<domain>`; Synapse answers at `matrix.<domain>`. */
  readonly domain: string;
  /** Local part of the admin user, created once at first start. */
  readonly adminUser: string;
  /** `admin_contact` of the server. */
  readonly adminEmail: string;
  /**
   * The admin's initial password: a token, e.g. a sensitive TerraformVariable's value (set by
   * TF_VAR_<name>); literals are refused because they would be written into cdktf.out.
   * Terraform checks it against Synapse's password policy before creating the container.
   * Changing it later does not change the existing user's password.
   */
  readonly adminPassword: string;
  /** The database; its password must be a token (e.g. the postgres module's generated secret). */
  readonly database: DatabaseConnection;
  readonly turn: SynapseTurnProps;
  /** Outgoing mail for notifications and password resets; `password` must be a token. @default no e-mail */
  readonly smtp?: SmtpOptions;
  /** Remote rooms more complex than this cannot be joined (admins can). @default 100 */
  readonly roomComplexity?: number;
  /** Let anyone read the public room directory without logging in. @default false */
  readonly allowPublicRoomsWithoutAuth?: boolean;
  /** Let other servers read the public room directory. @default false */
  readonly allowPublicRoomsOverFederation?: boolean;
  /**
   * A secret mixed into password hashes (a sensitive token). It must never change once users
   * exist, so it is not generated here. @default no pepper
   */
  readonly passwordPepper?: string;
  /** Refuse to destroy the data volume. @default true */
  readonly protectData?: boolean;
  /** Resource limits such as `{ cpu: "2", memory: "4GiB" }`. @default none */
  readonly limits?: Record<string, string>;
  /**
   * Networks (CIDRs) whose browsers use synapse-admin, which calls Synapse's API (admin API
   * included) directly on port 8008, in cleartext: keep them to networks you trust.
   * @default the host's own addresses on the container network (`<ipv4NetworkPart>.1/32`, and the IPv6 one)
   */
  readonly adminNetworks?: readonly string[];
}

/** Synapse's admin API: never reachable through the ingress proxy. */
export const SYNAPSE_ADMIN_PATH = "/_synapse/admin";

const SECRET_RULE =
  "must be a Terraform token such as a generated password or a sensitive TerraformVariable's value (set with TF_VAR_<name>); a literal would be written into cdktf.out";

export class Synapse extends Construct {
  readonly container: ServiceContainer;
  /** Container, Consul service and ingress backend name. */
  readonly name: string;
  readonly version: string;
  /** The public client and federation base URL. */
  readonly publicBaseUrl: string;
  readonly backend: IngressBackend;
  readonly routes: { readonly matrix: IngressRoute; readonly client: IngressRoute; readonly admin: IngressRoute };
  /** Replaced (and with it the container) when the version or the user-data changes. */

  constructor(scope: Construct, id: string, props: SynapseProps) {
    super(scope, id);
    validate(props, this.node.path);
    const { host, domain } = props;
    this.name = props.name ?? `${props.projectId}-synapse`;
    this.version = props.version ?? SYNAPSE_VERSION;
    this.publicBaseUrl = `https://matrix.${domain}/`;
    const secret = (secretId: string) => new Password(this, secretId, { length: 48, special: false }).result;
    // Values known only at apply time are escaped by Terraform into YAML double-quoted scalars.
    const quote = (value: string) => (Token.isUnresolved(value) ? Fn.jsonencode(value) : JSON.stringify(value));

    const homeserver: HomeserverOptions = {
      domain,
      publicBaseUrl: this.publicBaseUrl,
      dualStack: host.dualStack,
      database: props.database,
      registrationSharedSecret: secret("registration-shared-secret"),
      macaroonSecretKey: secret("macaroon-secret-key"),
      formSecret: secret("form-secret"),
      passwordPepper: props.passwordPepper,
      turn: {
        domain: props.turn.domain,
        listeningPort: props.turn.listeningPort ?? 3478,
        tlsListeningPort: props.turn.tlsListeningPort ?? 5349,
        sharedSecret: props.turn.sharedSecret,
      },
      adminEmail: props.adminEmail,
      smtp: props.smtp,
      roomComplexity: props.roomComplexity,
      allowPublicRoomsWithoutAuth: props.allowPublicRoomsWithoutAuth,
      allowPublicRoomsOverFederation: props.allowPublicRoomsOverFederation,
      hostPublicAddresses: [host.publicIpv4, host.externalIpv4, ...(host.publicIpv6 ? [host.publicIpv6] : [])],
      quote,
    };
    const files = synapseFiles({
      homeserver,
      bootstrap: { adminUser: props.adminUser, dualStack: host.dualStack },
      packageVersion: props.image === undefined ? `${this.version}+bookworm1` : undefined,
    });

    this.container = new ServiceContainer(this, "container", {
      host,
      name: this.name,
      hostPart: props.hostPart ?? 20,
      hostPartProp: `${this.node.path}.hostPart`,
      image: props.image,
      packages: SYNAPSE_INSTALL_PACKAGES,
      stockImageCommands: [SYNAPSE_PATHS.installScript],
      files,
      // Every secret (and the sections around them) in a pushed file, never in the user-data.
      secrets: synapseSecretFiles(homeserver, props.adminPassword),
      commands: SYNAPSE_BOOTSTRAP_START,
      // Nothing else on the bridge reaches 8008: Synapse trusts X-Forwarded-For, which the
      // proxy overwrites, and serves its admin API on the same port.
      firewall: [
        fromIngressProxy(props.ingress, SYNAPSE_PORT, "Synapse client and federation API"),
        {
          protocol: "tcp",
          ports: [SYNAPSE_PORT],
          from: props.adminNetworks?.length ? props.adminNetworks : host.gatewayCidrs,
          comment: "Synapse API for synapse-admin from the admin networks",
        },
      ],
      volumes: [{ name: "data", path: SYNAPSE_PATHS.dataDir }],
      service: { name: this.name, port: SYNAPSE_PORT },
      protectData: props.protectData,
      limits: props.limits,
    });

    // A new version replaces the container (the volume stays), whatever the image: the stock
    // image's user-data pins the package, but a pre-built image's alias need not change with it.
    this.container.revision.addTrigger("synapse_version", this.version);
    const instance = this.container.instance;
    instance.config = { ...instance.configInput, "user.synapse-version": this.version };
    instance.lifecycle = {
      ...instance.lifecycle,
      precondition: [adminPasswordPolicy(props.adminPassword)],
    };

    // Denied on the backend as well as by the route below: a route that sends a whole host to
    // Synapse (another project's, or a future one) still never reaches the admin API.
    this.backend = new IngressBackend(this, "ingress-backend", { service: this.name, denyPaths: [SYNAPSE_ADMIN_PATH] });
    const matrixHost = `matrix.${domain}`;
    this.routes = {
      matrix: new IngressRoute(this, "route-matrix", {
        name: `${this.name}-path-matrix`,
        host: matrixHost,
        path: "/_matrix",
        action: { backend: this.name },
      }),
      client: new IngressRoute(this, "route-synapse-client", {
        name: `${this.name}-path-synapse-client`,
        host: matrixHost,
        path: "/_synapse/client",
        action: { backend: this.name },
      }),
      // On every host, not only matrix.<domain>: the admin API is never public.
      admin: new IngressRoute(this, "route-synapse-admin", {
        name: `${this.name}-path-synapse-admin`,
        path: SYNAPSE_ADMIN_PATH,
        action: { deny: true },
      }),
    };
  }
}

function validate(props: SynapseProps, path: string): void {
  const problems = new Problems();
  const literal = (value: unknown) => !Token.isUnresolved(value);
  problems.check(
    isResourceName(props.projectId ?? "", 15),
    "projectId",
    `must be 1-15 lower-case letters, digits and dashes starting with a letter, got ${JSON.stringify(props.projectId)}`,
  );
  if (props.name !== undefined) {
    problems.check(
      isResourceName(props.name, 63),
      "name",
      `must be 1-63 lower-case letters, digits and dashes starting with a letter, got ${JSON.stringify(props.name)}`,
    );
  }
  problems.check(isDomainName(props.domain ?? ""), "domain", `must be ${DOMAIN_RULE}, got ${JSON.stringify(props.domain)}`);
  problems.check(
    isMatrixLocalpart(props.adminUser ?? ""),
    "adminUser",
    `must be a Matrix user name: ${LOCALPART_RULE}, got ${JSON.stringify(props.adminUser)}`,
  );
  problems.check(isEmail(props.adminEmail ?? ""), "adminEmail", `must be ${EMAIL_RULE}, got ${JSON.stringify(props.adminEmail)}`);
  if (props.version !== undefined) {
    problems.check(SYNAPSE_VERSION_PATTERN.test(props.version), "version", `must be a Synapse release such as ${SYNAPSE_VERSION}, got ${JSON.stringify(props.version)}`);
  }
  const db = props.database;
  if (literal(db.port)) problems.check(isPort(db.port), "database.port", `must be ${PORT_RULE}, got ${db.port}`);
  for (const key of ["host", "database", "user"] as const) {
    if (literal(db[key])) problems.check((db[key] ?? "") !== "", `database.${key}`, "must not be empty");
  }
  const secrets: [path: string, value: string | undefined, required: boolean][] = [
    ["adminPassword", props.adminPassword, true],
    ["database.password", db.password, true],
    ["turn.sharedSecret", props.turn.sharedSecret, true],
    ["smtp.password", props.smtp?.password, false],
    ["passwordPepper", props.passwordPepper, false],
  ];
  for (const [at, value, required] of secrets) {
    // The value itself is never echoed.
    if (required || value !== undefined) problems.check(!literal(value), at, SECRET_RULE);
  }
  problems.check(isDomainName(props.turn.domain ?? ""), "turn.domain", `must be ${DOMAIN_RULE}, got ${JSON.stringify(props.turn.domain)}`);
  const turnPorts = [props.turn.listeningPort ?? 3478, props.turn.tlsListeningPort ?? 5349];
  problems.check(isPort(turnPorts[0]), "turn.listeningPort", `must be ${PORT_RULE}, got ${turnPorts[0]}`);
  problems.check(isPort(turnPorts[1]), "turn.tlsListeningPort", `must be ${PORT_RULE}, got ${turnPorts[1]}`);
  problems.check(turnPorts[0] !== turnPorts[1], "turn.tlsListeningPort", `must differ from turn.listeningPort (${turnPorts[0]})`);
  if (props.smtp) {
    const { smtp } = props;
    if (literal(smtp.host)) problems.check((smtp.host ?? "") !== "", "smtp.host", "must be the mail server's host name or address");
    problems.check(isPort(smtp.port), "smtp.port", `must be ${PORT_RULE}, got ${smtp.port}`);
    problems.check(smtp.password === undefined || smtp.user !== undefined, "smtp.user", "is required when smtp.password is set");
    // They end up in SMTP commands and mail headers: a line break would inject more.
    for (const [at, value] of [["smtp.host", smtp.host], ["smtp.user", smtp.user], ["smtp.notifFrom", smtp.notifFrom]] as const) {
      if (value !== undefined && literal(value)) problems.check(isSingleLine(value), at, `must be ${SINGLE_LINE_RULE}, got ${quote(value)}`);
    }
  }
  if (props.roomComplexity !== undefined) {
    problems.check(
      Number.isFinite(props.roomComplexity) && props.roomComplexity > 0,
      "roomComplexity",
      `must be a number above 0 (100 is effectively no limit), got ${props.roomComplexity}`,
    );
  }
  problems.throwIfAny(`${path}: invalid Synapse props`);
}

/** Synapse's password policy as a Terraform precondition: checked at plan time, never echoed. */
function adminPasswordPolicy(password: string) {
  const checks = [
    Op.gte(Fn.lengthOf(password), PASSWORD_POLICY.minimum_length),
    // Not `> 0`: cdktf 0.21 renders a literal 0 operand as "undefined".
    ...PASSWORD_RULES.map((rule) => Op.gte(Fn.lengthOf(Fn.regexall(rule.pattern, password)), 1)),
  ];
  return {
    condition: checks.reduce((all, check) => Op.and(all, check)),
    errorMessage: `The Synapse admin password needs at least ${PASSWORD_POLICY.minimum_length} characters, ${PASSWORD_RULES.map((r) => r.demand).join(", ")}.`,
  };
}
