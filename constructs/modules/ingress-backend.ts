/**
 * Declares a Consul catalog service as an HAProxy backend of the ingress proxy. HAProxy finds
 * its instances through Consul DNS (SRV records), so the backend name is the service name.
 * Paths the service must never receive from outside are denied on the backend itself, so no
 * route (a whole host, a path, another project's rule) can send them there.
 */
import { Construct } from "constructs";
import { KvEntries } from "../core/kv-entries";
import { kvPaths } from "../../lib/kv";
import { Problems } from "../../lib/problems";

export interface IngressBackendProps {
  /** Consul service name of the backend. */
  readonly service: string;
  /** Connect to the backend over TLS (without verification, as inside the host network). @default false */
  readonly ssl?: boolean;
  /**
   * Path prefixes answered 403 before the backend sees them, matched like every path rule:
   * url-decoded, case-insensitive, with `//` and `/./` merged and double encoding decoded.
   * @default none
   */
  readonly denyPaths?: readonly string[];
}

export class IngressBackend extends Construct {
  readonly service: string;

  constructor(scope: Construct, id: string, props: IngressBackendProps) {
    super(scope, id);
    const problems = new Problems();
    (props.denyPaths ?? []).forEach((path, i) =>
      problems.check(/^\/[^\s'"{}#\\]*$/.test(path), `denyPaths[${i}]`, `must start with "/" and contain no spaces, quotes, braces, "#" or "\\", got ${JSON.stringify(path)}`),
    );
    problems.throwIfAny(`${this.node.path}: invalid IngressBackend props`);
    this.service = props.service;
    const denies = Object.fromEntries((props.denyPaths ?? []).map((path, i) => [kvPaths.backendDeny(props.service, `deny-${i}`), path]));
    // The denies go in first, so the proxy never renders the backend without them.
    const denyEntries = Object.keys(denies).length > 0 ? new KvEntries(this, "deny", denies) : undefined;
    new KvEntries(this, "kv", { [kvPaths.backend(props.service, props.ssl ?? false)]: "" }, denyEntries && [denyEntries.resource]);
  }
}
