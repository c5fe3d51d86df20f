/**
 * Declares a Consul catalog service as an HAProxy backend of the ingress proxy. HAProxy finds
 * its instances through Consul DNS (SRV records), so the backend name is the service name.
 */
import { Construct } from "constructs";
import { KvEntries } from "../core/kv-entries";
import { kvPaths } from "../../lib/kv";

export interface IngressBackendProps {
  /** Consul service name of the backend. */
  readonly service: string;
  /** Connect to the backend over TLS (without verification, as inside the host network). @default false */
  readonly ssl?: boolean;
}

export class IngressBackend extends Construct {
  readonly service: string;

  constructor(scope: Construct, id: string, props: IngressBackendProps) {
    super(scope, id);
    this.service = props.service;
    new KvEntries(this, "kv", { [kvPaths.backend(props.service, props.ssl ?? false)]: "" });
  }
}
