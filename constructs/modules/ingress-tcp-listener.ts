/**
 * A raw TCP port on the ingress proxy, forwarded to a Consul catalog service: the KV entry
 * `service/haproxy/tcp-listeners/<port>` = service makes the proxy's HAProxy listen and its
 * firewall open the port, and an LXD proxy device on the proxy's container forwards the port
 * from the host's public IPv4 (and public IPv6 on dual-stack hosts). ryo wrote only the KV
 * entry, so its listeners were unreachable from outside. How the devices get onto the proxy's
 * container depends on the LXD provider major (lxd-dialect.ts): with 1.x the listener must be
 * in the stack that deploys the proxy.
 */
import { Construct } from "constructs";
import { KvEntries } from "../core/kv-entries";
import { LxdDevice, lxdDialect } from "../core/lxd-dialect";
import type { IngressProxyRef } from "./ingress-proxy";
import { kvPaths } from "../../lib/kv";
import { PORT_RULE, Problems, isPort } from "../../lib/problems";
import { INGRESS_RESERVED_PORTS } from "../../lib/render/haproxy";

export interface IngressTcpListenerProps {
  /** The ingress proxy, from `new IngressProxy(...)` or `IngressProxy.reference(host)`. */
  readonly ingress: IngressProxyRef;
  /** Public port, the same on the host and on the proxy. */
  readonly port: number;
  /** Consul catalog service that receives the connections (SRV lookup gives its port). */
  readonly service: string;
}

export class IngressTcpListener extends Construct {
  readonly port: number;
  readonly service: string;
  /** The proxy devices: IPv4, plus IPv6 when the host has a public IPv6 address. */
  readonly devices: LxdDevice[];

  constructor(scope: Construct, id: string, props: IngressTcpListenerProps) {
    super(scope, id);
    const problems = new Problems();
    const reserved = INGRESS_RESERVED_PORTS.join(", ");
    problems.check(
      isPort(props.port) && !INGRESS_RESERVED_PORTS.includes(props.port),
      "port",
      `must be ${PORT_RULE} other than the proxy's own ports ${reserved}, got ${props.port}`,
    );
    problems.check(
      /^[a-z0-9][a-z0-9-]*$/.test(props.service ?? ""),
      "service",
      `must be a Consul service name (lower-case letters, digits and dashes), got ${JSON.stringify(props.service)}`,
    );
    problems.throwIfAny(`${this.node.path}: invalid IngressTcpListener props`);
    this.port = props.port;
    this.service = props.service;

    const { host, address, containerName } = props.ingress;
    host.publicPorts.reserve(this.node.path, "tcp", props.port, props.port, "port");
    const dependsOn = props.ingress.instance ? [props.ingress.instance] : undefined;
    const listeners = [{ family: "v4", listen: host.publicIpv4, connect: address.ipv4 }];
    if (host.publicIpv6 && address.ipv6) listeners.push({ family: "v6", listen: `[${host.publicIpv6}]`, connect: `[${address.ipv6}]` });
    this.devices = listeners.map(({ family, listen, connect }) => ({
      name: `tcp-listener-${props.port}-${family}`,
      type: "proxy",
      properties: { listen: `tcp:${listen}:${props.port}`, connect: `tcp:${connect}:${props.port}`, nat: "true" },
    }));
    const container = props.ingress.container;
    lxdDialect(host).addDevices(
      this,
      host,
      { containerName, instance: props.ingress.instance, addDevices: container && ((devices) => container.addDevices(devices)) },
      this.devices,
      `IngressTcpListener ${this.node.path} (port ${props.port})`,
    );
    new KvEntries(this, "kv", { [kvPaths.tcpListener(props.port)]: props.service }, dependsOn);
  }
}
