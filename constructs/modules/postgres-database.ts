/**
 * Registers a database and its owner role on a shared PostgreSQL server (constructs/modules/postgres.ts,
 * deployed in this stack or another): a random password, kept in Terraform state only, and
 * Consul KV entries under `service/postgres/databases/<db>/` that the server's consul-template
 * turns into `CREATE ROLE` / `CREATE DATABASE`.
 *
 * The password never goes through KV, nor anything that logs in like it (an md5 verifier would:
 * PostgreSQL's md5 method accepts the hash itself). Terraform writes the password through the
 * LXD API into a root-only file in the server's container, where a root-only program computes
 * the SCRAM-SHA-256 verifier that the role stores; KV publishes only `password-sha256`, the
 * SHA-256 of the password, which says which delivered password is current and makes
 * consul-template re-run when it changes. Why not publish a SCRAM verifier instead: Terraform
 * cannot compute one (no PBKDF2 or HMAC), and a verifier still allows an offline guessing
 * attack and, with its ServerKey, impersonating the server to the client. The digest of a
 * 32-character random password allows neither: it cannot be guessed back and is not accepted
 * by any authentication method. So the only readers of the password are Terraform, the
 * server's root, and the client it is handed to.
 *
 * Destroying a registration removes its keys and the delivered password but never drops the
 * database or the role.
 */
import { Construct } from "constructs";
import { Fn, Token } from "cdktf";
import { Password } from "@cdktf/provider-random/lib/password";
import { lxdDialect } from "../core/lxd-dialect";
import { KvEntries } from "../core/kv-entries";
import type { PostgresRef } from "./postgres";
import { Host, isIpv4, isIpv6 } from "../../lib/host";
import { kvPaths } from "../../lib/kv";
import { Problems } from "../../lib/problems";
import {
  ENCODING_PATTERN,
  IDENTIFIER_RULE,
  LOCALE_PATTERN,
  POSTGRES_PASSWORDS_DIR,
  RESERVED_DATABASES,
  RESERVED_ROLES,
  isPostgresIdentifier,
} from "../../lib/render/postgres";

export interface PostgresDatabaseOptions {
  /** Database name: lower-case letters, digits and underscores, starting with a letter, at most 63 characters. */
  readonly database: string;
  /** Owner role, created with a login and a random password; same rules as `database`. One owner per database. */
  readonly owner: string;
  /** @default "UTF8" */
  readonly encoding?: string;
  /** @default "C" */
  readonly lcCollate?: string;
  /** @default "C" */
  readonly lcCtype?: string;
  /** @default "template0" */
  readonly template?: string;
  /**
   * Addresses (IPv4 or IPv6, e.g. the client container's `address.ipv4`) that the server's
   * firewall admits to port 5432; nothing else on the bridge reaches PostgreSQL.
   * @default none: no container reaches the server on this registration's behalf
   */
  readonly clients?: readonly string[];
}

export interface PostgresDatabaseProps extends PostgresDatabaseOptions {
  readonly postgres: PostgresRef;
}

/**
 * How a client reaches the database. `password` is a Terraform token (sensitive). The server
 * admits only TLS with SCRAM-SHA-256: connect with `sslmode=require` and, where the client
 * supports it (libpq 13 and later), `channel_binding=require`, as Synapse does.
 */
export interface PostgresConnection {
  readonly host: string;
  readonly port: number;
  readonly database: string;
  readonly user: string;
  readonly password: string;
}

// Databases and owners registered per host in this app, to refuse two registrations that would
// fight over one database or one role's password.
const registered = new WeakMap<Host, { databases: Map<string, string>; owners: Map<string, string> }>();

export class PostgresDatabase extends Construct {
  readonly database: string;
  readonly owner: string;
  readonly password: Password;
  readonly connection: PostgresConnection;

  constructor(scope: Construct, id: string, props: PostgresDatabaseProps) {
    super(scope, id);
    const problems = new Problems();
    const identifier = (path: string, value: string, reserved: readonly string[]) => {
      problems.check(isPostgresIdentifier(value), path, `must be ${IDENTIFIER_RULE}, got ${JSON.stringify(value)}`);
      problems.check(!reserved.includes(value) && !value.startsWith("pg_"), path, `${JSON.stringify(value)} is reserved (${reserved.join(", ")} and pg_*)`);
    };
    identifier("database", props.database, RESERVED_DATABASES);
    identifier("owner", props.owner, RESERVED_ROLES);
    if (props.template !== undefined) {
      problems.check(isPostgresIdentifier(props.template), "template", `must be ${IDENTIFIER_RULE}, got ${JSON.stringify(props.template)}`);
    }
    if (props.encoding !== undefined) {
      problems.check(new RegExp(ENCODING_PATTERN).test(props.encoding), "encoding", `must be an encoding name such as UTF8, got ${JSON.stringify(props.encoding)}`);
    }
    for (const [path, value] of [["lcCollate", props.lcCollate], ["lcCtype", props.lcCtype]] as const) {
      if (value !== undefined) {
        problems.check(new RegExp(LOCALE_PATTERN).test(value), path, `must be a locale name such as C or en_US.UTF-8, got ${JSON.stringify(value)}`);
      }
    }
    (props.clients ?? []).forEach((address, i) =>
      problems.check(
        Token.isUnresolved(address) || isIpv4(address) || isIpv6(address),
        `clients[${i}]`,
        `must be an IPv4 or IPv6 address (lower-case hex, no prefix length) such as 10.10.1.20, got ${JSON.stringify(address)}`,
      ),
    );
    const seen = registered.get(props.postgres.host) ?? { databases: new Map<string, string>(), owners: new Map<string, string>() };
    registered.set(props.postgres.host, seen);
    const otherDb = seen.databases.get(props.database);
    problems.check(otherDb === undefined, "database", `${JSON.stringify(props.database)} is already registered on this host by ${otherDb}`);
    const otherOwner = seen.owners.get(props.owner);
    problems.check(
      otherOwner === undefined,
      "owner",
      `${JSON.stringify(props.owner)} already owns the database registered by ${otherOwner}; each database needs its own owner (each gets its own password)`,
    );
    problems.throwIfAny(`${this.node.path}: invalid PostgresDatabase props`);
    seen.databases.set(props.database, this.node.path);
    seen.owners.set(props.owner, this.node.path);

    this.database = props.database;
    this.owner = props.owner;
    this.password = new Password(this, "password", { length: 32, special: false });

    // Root-only in the server's container; the program that reads it publishes only a verifier.
    const delivery = lxdDialect(props.postgres.host).file(this, "password-delivery", props.postgres.host, {
      containerName: props.postgres.containerName,
      path: `${POSTGRES_PASSWORDS_DIR}/${props.database}`,
      content: this.password.result,
      // A new container of a server in this stack gets the password again in the same apply.
      replaceTriggeredBy: props.postgres.containerRevision,
    });

    const setting = (name: Parameters<typeof kvPaths.postgresDatabaseSetting>[1]) => kvPaths.postgresDatabaseSetting(props.database, name);
    // The server acts on the KV change, so the password is delivered first.
    new KvEntries(this, "kv", {
      [setting("owner")]: props.owner,
      [setting("encoding")]: props.encoding ?? "UTF8",
      [setting("lc-collate")]: props.lcCollate ?? "C",
      [setting("lc-ctype")]: props.lcCtype ?? "C",
      [setting("template")]: props.template ?? "template0",
      // Names the delivered password; the digest itself logs in nowhere.
      [setting("password-sha256")]: Fn.sha256(this.password.result),
    }, [delivery]);

    if ((props.clients ?? []).length > 0) {
      new KvEntries(this, "clients", Object.fromEntries((props.clients ?? []).map((address, i) => [kvPaths.postgresClient(`${props.database}-${i}`), address])));
    }

    this.connection = {
      host: props.postgres.address.ipv4,
      port: props.postgres.port,
      database: props.database,
      user: props.owner,
      password: this.password.result,
    };
  }
}
