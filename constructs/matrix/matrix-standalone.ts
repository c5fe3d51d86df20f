/**
 * A complete Matrix project on an LXD host: Synapse, Element Web and synapse-admin in their own
 * containers, registered with the host's shared modules: certificates and routes on the
 * ingress proxy, the Synapse database on PostgreSQL, the `.well-known/matrix` documents on the
 * well-known server, and TURN through coturn. Every name is prefixed by the project id, so
 * several projects can share one host.
 */
import { Construct } from "constructs";
import { dependable } from "cdktf/lib/tfExpression";
import type { Host } from "../../lib/host";
import type { SmtpOptions } from "../../lib/render/synapse";
import type { FooterLink } from "../../lib/render/element";
import { PROJECT_ID_MAX_LENGTH, Problems, checkResourceName } from "../../lib/problems";
import type { SharedModuleRefs } from "../modules/shared-modules";
import { CertificateDomains } from "../modules/certificate-domains";
import { PostgresDatabase } from "../modules/postgres-database";
import { WellknownJsonRule } from "../modules/wellknown-rule";
import { Synapse } from "./synapse";
import { ElementWeb } from "./element-web";
import { SynapseAdmin } from "./synapse-admin";

export interface MatrixAdmin {
  /** Localpart of the admin user created at first boot. */
  readonly username: string;
  /** Admin contact (also the Let's Encrypt account). */
  readonly email: string;
  /** A Terraform token (sensitive variable); never a literal. */
  readonly password: string;
}

export interface PinnedRelease {
  readonly version: string;
  readonly sha256: string;
  /** @default the project's release URL for the version */
  readonly downloadUrl?: string;
}

export interface MatrixStandaloneProps {
  readonly host: Host;
  /** The shared modules this project registers with (deployed here or by another stack). */
  readonly modules: SharedModuleRefs;
  /** At most 15 characters; prefixes every container, service and route name. */
  readonly projectId: string;
  /** The Matrix server name: users are `@user:<domain>`. */
  readonly domain: string;
  /** The TURN server's public name, as registered with coturn. */
  readonly turnDomain: string;
  readonly admin: MatrixAdmin;
  /** Outgoing mail. @default none: Synapse sends no e-mail */
  readonly smtp?: SmtpOptions;
  /** @default 100 */
  readonly roomComplexity?: number;
  /** @default false */
  readonly allowPublicRoomsWithoutAuth?: boolean;
  /** @default false */
  readonly allowPublicRoomsOverFederation?: boolean;
  /** Identity server advertised in `/.well-known/matrix/client`. @default none */
  readonly identityServer?: string;
  /** Element settings. @default the pinned release, country code GB, no footer links */
  readonly element?: Partial<PinnedRelease> & { readonly image?: string; readonly countryCode?: string; readonly footerLinks?: readonly FooterLink[] };
  /** @default the pinned Synapse version on the stock image */
  readonly synapse?: { readonly version?: string; readonly image?: string };
  /** @default the pinned release; it and Synapse's port 8008 reachable from the host's own address only */
  readonly synapseAdmin?: Partial<PinnedRelease> & { readonly image?: string; readonly adminNetworks?: readonly string[] };
  /** Host parts of the static addresses. @default { synapse: 20, element: 21, synapseAdmin: 22 } */
  readonly hostParts?: { readonly synapse?: number; readonly element?: number; readonly synapseAdmin?: number };
  /** Refuse to destroy Synapse's data volume. @default true */
  readonly protectData?: boolean;
}

export class MatrixStandalone extends Construct {
  readonly synapse: Synapse;
  readonly element: ElementWeb;
  readonly synapseAdmin: SynapseAdmin;
  readonly database: PostgresDatabase;
  readonly certificates: CertificateDomains;

  constructor(scope: Construct, id: string, props: MatrixStandaloneProps) {
    super(scope, id);
    const problems = new Problems();
    checkResourceName(problems, "projectId", props.projectId, PROJECT_ID_MAX_LENGTH);
    problems.throwIfAny(`${this.node.path}: invalid MatrixStandalone props`);

    const { host, modules, projectId, domain } = props;
    const matrixHost = `matrix.${domain}`;
    const elementHost = `element.${domain}`;

    this.certificates = new CertificateDomains(this, "certificates", {
      domains: [domain, matrixHost, elementHost],
      adminEmail: props.admin.email,
    });

    const dbName = `${projectId.replace(/-/g, "_")}_synapse`;
    // Synapse is the database's only client; its address follows from its host part.
    const synapsePart = props.hostParts?.synapse ?? 20;
    this.database = new PostgresDatabase(this, "synapse-database", {
      postgres: modules.postgres,
      database: dbName,
      owner: dbName,
      clients: [host.ipv4(synapsePart), ...(host.dualStack ? [host.ipv6(synapsePart)!] : [])],
    });

    this.synapse = new Synapse(this, "synapse", {
      host,
      projectId,
      hostPart: synapsePart,
      image: props.synapse?.image,
      version: props.synapse?.version,
      domain,
      adminUser: props.admin.username,
      adminEmail: props.admin.email,
      adminPassword: props.admin.password,
      database: this.database.connection,
      turn: {
        domain: props.turnDomain,
        listeningPort: modules.turn.listeningPort,
        tlsListeningPort: modules.turn.tlsListeningPort,
        sharedSecret: modules.turn.sharedSecret,
      },
      smtp: props.smtp,
      roomComplexity: props.roomComplexity,
      allowPublicRoomsWithoutAuth: props.allowPublicRoomsWithoutAuth,
      allowPublicRoomsOverFederation: props.allowPublicRoomsOverFederation,
      protectData: props.protectData,
      ingress: modules.ingress,
      adminNetworks: props.synapseAdmin?.adminNetworks,
    });
    // Synapse starts once its database and certificates are registered; it still waits for the
    // database to answer, since PostgreSQL creates it asynchronously.
    this.synapse.container.instance.dependsOn = [...dependables(this.database), ...dependables(this.certificates)];

    this.element = new ElementWeb(this, "element", {
      host,
      ingress: modules.ingress,
      projectId,
      hostPart: props.hostParts?.element ?? 21,
      domain,
      version: props.element?.version,
      sha256: props.element?.sha256,
      downloadUrl: props.element?.downloadUrl,
      image: props.element?.image,
      countryCode: props.element?.countryCode,
      footerLinks: props.element?.footerLinks,
    });

    this.synapseAdmin = new SynapseAdmin(this, "synapse-admin", {
      host,
      projectId,
      hostPart: props.hostParts?.synapseAdmin ?? 22,
      homeserverUrl: `http://${this.synapse.container.address.ipv4}:8008`,
      version: props.synapseAdmin?.version,
      sha256: props.synapseAdmin?.sha256,
      downloadUrl: props.synapseAdmin?.downloadUrl,
      image: props.synapseAdmin?.image,
      adminNetworks: props.synapseAdmin?.adminNetworks,
    });

    const client: Record<string, unknown> = { "m.homeserver": { base_url: `https://${matrixHost}` } };
    if (props.identityServer) client["m.identity_server"] = { base_url: props.identityServer };
    const wellknown = [
      { name: "client", path: "/.well-known/matrix/client", payload: client },
      { name: "server", path: "/.well-known/matrix/server", payload: { "m.server": `${matrixHost}:443` } },
      {
        name: "support",
        path: "/.well-known/matrix/support",
        payload: { contacts: [{ matrix_id: `@${props.admin.username}:${domain}`, email_address: props.admin.email, role: "m.role.admin" }] },
      },
    ];
    for (const rule of wellknown) {
      new WellknownJsonRule(this, `wellknown-${rule.name}`, { wellknown: modules.wellknown, domain, ...rule, name: `${projectId}-matrix-${rule.name}` });
    }
  }
}

/** `depends_on` entries for every Terraform resource under `scope`. */
function dependables(scope: Construct): string[] {
  return scope.node
    .findAll()
    .filter((c): c is Construct & { fqn: string; terraformResourceType: string } => "terraformResourceType" in c && "fqn" in c)
    .map((c) => dependable(c));
}
