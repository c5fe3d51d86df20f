/**
 * The shared PostgreSQL 15 server of a host (ryo's postgres module): one container at a static
 * address, its cluster on a protected LXD storage volume that survives container replacement,
 * reachable on port 5432 only from the client addresses that registrations name (its firewall is
 * a consul-template template over `service/postgres/clients`). Projects register databases with
 * PostgresDatabase (Consul KV); consul-template in the container creates them. It needs the
 * host's Consul server (consul-template reads the registrations from it).
 *
 * Clients log in over TLS with SCRAM-SHA-256 only; a registration's password reaches the
 * container through the LXD API, never through Consul KV (see PostgresDatabase).
 *
 * There is no superuser password at all: the `postgres` role logs in only through the local
 * socket as the `postgres` system user (peer authentication), i.e. administration is
 * `lxc exec <container> -- runuser -u postgres -- psql`. Nothing on the network can become
 * superuser, which is safer than ryo's network-reachable superuser password.
 */
import { Construct } from "constructs";
import { KV_PREFIX } from "../../lib/kv";
import { ServiceContainer } from "../core/service-container";
import { PostgresDatabase, PostgresDatabaseOptions } from "./postgres-database";
import type { Host } from "../../lib/host";
import type { StaticAddress } from "../../lib/address-plan";
import { Problems, isResourceName } from "../../lib/problems";
import {
  MANAGED_SETTINGS,
  POSTGRES_DATABASES_JSON,
  POSTGRES_DATABASES_TEMPLATE,
  POSTGRES_DATA_MOUNT,
  POSTGRES_ENSURE_SCRIPT,
  POSTGRES_PORT,
  POSTGRES_VERSION,
  postgresCommands,
  postgresFiles,
  renderPostgresNftablesTemplate,
} from "../../lib/render/postgres";
import { CONSUL_TEMPLATE_PACKAGES, CONSUL_TEMPLATE_START, consulTemplateDownload } from "../../lib/render/consul-template";

/** ryo's address for the postgres module. */
export const POSTGRES_DEFAULT_HOST_PART = 13;
export const POSTGRES_DEFAULT_NAME = "postgres";

/** A PostgreSQL server that databases can be registered on, deployed in this stack or elsewhere. */
export interface PostgresRef {
  readonly host: Host;
  readonly address: StaticAddress;
  readonly port: number;
  /** The server's LXD container, which registrations deliver their passwords to (a name or a token). */
  readonly containerName: string;
  /**
   * Bare Terraform address of the resource whose replacement replaces the server's container
   * (`replace_triggered_by`), when the server is deployed in this stack: a replaced container
   * gets the registrations' passwords again in the same apply.
   * @default none: the server is deployed by another stack, and a container it replaces gets
   *   the passwords on this stack's next apply (its roles keep their passwords meanwhile)
   */
  readonly containerRevision?: string;
}

export interface PostgresReferenceOptions {
  /** Host part the server was deployed with. @default 13 */
  readonly hostPart?: number;
  /** Container name the server was deployed with (reserves its address under that name). @default "postgres" */
  readonly name?: string;
}

export interface PostgresProps {
  readonly host: Host;
  /** Container and Consul service name. @default "postgres" */
  readonly name?: string;
  /** Last octet of the static address (and last IPv6 hextet). @default 13 */
  readonly hostPart?: number;
  /**
   * A pre-built image with `postgresql-15`, python3, openssl and consul-template installed.
   * @default the stock Debian 12 image; cloud-init installs the packages and consul-template
   */
  readonly image?: string;
  /** Refuse to destroy the data volume (`prevent_destroy`). @default true */
  readonly protectData?: boolean;
  /**
   * Further postgresql.conf settings, e.g. `{ shared_buffers: "1GB", max_connections: 200 }`.
   * Addresses, paths and authentication settings are the module's and cannot be set here.
   * @default PostgreSQL's defaults (max_connections 100, shared_buffers 128MB)
   */
  readonly settings?: Readonly<Record<string, string | number | boolean>>;
  /** LXD resource limits such as `{ memory: "2GiB" }`. @default none */
  readonly limits?: Record<string, string>;
}

export class Postgres extends Construct implements PostgresRef {
  /** A server deployed by another stack on `host`; its address is reserved in this app too. */
  static reference(host: Host, options: PostgresReferenceOptions = {}): PostgresRef {
    const name = options.name ?? POSTGRES_DEFAULT_NAME;
    const address = host.addresses.reserve(name, options.hostPart ?? POSTGRES_DEFAULT_HOST_PART, "hostPart");
    return { host, address, port: POSTGRES_PORT, containerName: name };
  }

  readonly host: Host;
  readonly address: StaticAddress;
  readonly port = POSTGRES_PORT;
  readonly name: string;
  readonly container: ServiceContainer;
  /** The container's name as a reference, so that password deliveries wait for the container. */
  readonly containerName: string;
  readonly containerRevision: string;

  constructor(scope: Construct, id: string, props: PostgresProps) {
    super(scope, id);
    const name = props.name ?? POSTGRES_DEFAULT_NAME;
    const problems = new Problems();
    problems.check(isResourceName(name, 63), "name", `must be lower-case letters, digits and dashes, starting with a letter, at most 63 characters, got ${JSON.stringify(name)}`);
    for (const key of Object.keys(props.settings ?? {})) {
      problems.check(/^[a-z][a-z0-9_.]*$/.test(key), `settings.${key}`, "is not a postgresql.conf setting name (lower-case letters, digits, _ and .)");
      problems.check(!MANAGED_SETTINGS.includes(key), `settings.${key}`, `is set by the module; the settings it manages are ${MANAGED_SETTINGS.join(", ")}`);
    }
    for (const [key, value] of Object.entries(props.settings ?? {})) {
      problems.check(typeof value !== "string" || !/[\r\n]/.test(value), `settings.${key}`, "must be a single line");
    }
    problems.throwIfAny(`${this.node.path}: invalid Postgres props`);

    this.host = props.host;
    this.name = name;
    this.address = props.host.addresses.reserve(name, props.hostPart ?? POSTGRES_DEFAULT_HOST_PART, "hostPart");
    const listenAddresses = [this.address.ipv4, ...(this.address.ipv6 ? [this.address.ipv6] : [])];

    this.container = new ServiceContainer(this, "container", {
      host: props.host,
      name,
      hostPart: this.address.hostPart,
      hostPartProp: "hostPart",
      image: props.image,
      // python3 computes the SCRAM verifiers, openssl makes the TLS certificate (both also pulled in by cloud-init and postgresql-common).
      packages: [`postgresql-${POSTGRES_VERSION}`, "python3", "openssl", ...CONSUL_TEMPLATE_PACKAGES],
      stockImageCommands: consulTemplateDownload(),
      files: [
        ...postgresFiles({ listenAddresses, clientCidrs: props.host.networkCidrs, settings: props.settings }),
      ],
      consulTemplate: {
        templates: [
          {
            name: "nftables.conf.ctmpl",
            template: renderPostgresNftablesTemplate([]),
            destination: "/etc/nftables.conf",
            perms: "0755",
            command: "nft -f /etc/nftables.conf",
          },
          {
            name: "postgres-databases.json.ctmpl",
            template: POSTGRES_DATABASES_TEMPLATE,
            destination: POSTGRES_DATABASES_JSON,
            perms: "0640",
            command: POSTGRES_ENSURE_SCRIPT,
          },
        ],
        reads: { keyPrefixes: [KV_PREFIX.postgres] },
      },
      commands: [...postgresCommands(), CONSUL_TEMPLATE_START],
      // Port 5432 opens only to the clients that registrations name (renderPostgresNftablesTemplate).
      firewall: [],
      volumes: [{ name: "data", path: POSTGRES_DATA_MOUNT }],
      service: { name, port: POSTGRES_PORT, tags: ["database"] },
      protectData: props.protectData,
      limits: props.limits,
    });
    this.containerName = this.container.instance.name;
    this.containerRevision = this.container.revision.address;
  }

  /** Registers a database and its owner role on this server. */
  addDatabase(id: string, options: PostgresDatabaseOptions): PostgresDatabase {
    return new PostgresDatabase(this, id, { ...options, postgres: this });
  }
}
