/**
 * The four shared modules of an LXD host (ingress proxy, PostgreSQL, well-known server, coturn),
 * deployed together once per host. Projects take the resulting references (`SharedModuleRefs`)
 * and only register what they need; a project in another stack uses `SharedModules.reference`.
 */
import { Construct } from "constructs";
import type { Host } from "../../lib/host";
import { IngressProxy, IngressProxyRef } from "./ingress-proxy";
import { Postgres, PostgresRef } from "./postgres";
import { WellknownServer, WellknownRef } from "./wellknown-server";
import { Coturn, TurnServerRef } from "./coturn";
import { TurnDomain } from "./turn-domain";

/** What a project needs to know about the modules it registers with. */
export interface SharedModuleRefs {
  readonly ingress: IngressProxyRef;
  readonly postgres: PostgresRef;
  readonly wellknown: WellknownRef;
  readonly turn: TurnServerRef;
}

/** Per-module overrides: a pre-built image and the host part of its static address. */
export interface ModuleOptions {
  /** @default the module's stock image with cloud-init installing its packages */
  readonly image?: string;
  /** @default the module's own (ingress 10, postgres 13, coturn 15, well-known 16) */
  readonly hostPart?: number;
}

export interface CoturnModuleOptions extends ModuleOptions {
  /** @default 3478 */
  readonly listeningPort?: number;
  /** @default 5349 */
  readonly tlsListeningPort?: number;
  /** @default 50000 */
  readonly minPort?: number;
  /** @default 51000 */
  readonly maxPort?: number;
  /**
   * The TURN server's public name (realm and certificate); registered with its certificate.
   * @default none: coturn runs with the fallback certificate and no realm until one is registered
   */
  readonly domain?: string;
  /** Let's Encrypt account for the TURN domain's certificate. Required with `domain`. @default none */
  readonly adminEmail?: string;
}

export interface SharedModulesProps {
  readonly host: Host;
  /** @default {} */
  readonly ingressProxy?: ModuleOptions;
  /** @default {} */
  readonly postgres?: ModuleOptions;
  /** @default {} */
  readonly wellknown?: ModuleOptions;
  /** @default {} */
  readonly coturn?: CoturnModuleOptions;
  /** Refuse to destroy the modules' data volumes (certificates, databases). @default true */
  readonly protectData?: boolean;
}

export class SharedModules extends Construct implements SharedModuleRefs {
  /**
   * Modules deployed by another stack on `host`. The TURN shared secret must come from that
   * deployment (a cross-stack reference, or a sensitive Terraform variable).
   */
  static reference(
    host: Host,
    turn: { readonly sharedSecret: string; readonly listeningPort?: number; readonly tlsListeningPort?: number },
    options: { readonly ingressProxy?: ModuleOptions; readonly postgres?: ModuleOptions } = {},
  ): SharedModuleRefs {
    return {
      ingress: IngressProxy.reference(host, { hostPart: options.ingressProxy?.hostPart }),
      postgres: Postgres.reference(host, { hostPart: options.postgres?.hostPart }),
      wellknown: WellknownServer.reference(host),
      turn: { host, sharedSecret: turn.sharedSecret, listeningPort: turn.listeningPort ?? 3478, tlsListeningPort: turn.tlsListeningPort ?? 5349 },
    };
  }

  readonly ingress: IngressProxy;
  readonly postgres: Postgres;
  readonly wellknown: WellknownServer;
  readonly turn: Coturn;

  constructor(scope: Construct, id: string, props: SharedModulesProps) {
    super(scope, id);
    const { host, protectData } = props;
    this.ingress = new IngressProxy(this, "ingress-proxy", { host, protectData, ...props.ingressProxy });
    this.postgres = new Postgres(this, "postgres", { host, protectData, ...props.postgres });
    this.wellknown = new WellknownServer(this, "wellknown", { host, ingress: this.ingress, ...props.wellknown });
    const { domain, adminEmail, ...coturn } = props.coturn ?? {};
    this.turn = new Coturn(this, "coturn", { host, certificates: this.ingress, ...coturn });
    if (domain !== undefined) {
      if (adminEmail === undefined) throw new Error(`${this.node.path}: coturn.adminEmail is required with coturn.domain (Let's Encrypt account)`);
      new TurnDomain(this, "turn-domain", { domain, adminEmail });
    }
  }
}
