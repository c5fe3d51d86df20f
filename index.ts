/**
 * Public entry point of the library: the host description, the shared modules' deployment and
 * registration constructs, the Matrix constructs and stack, and the configuration loader.
 */
export * from "./lib/host";
export * from "./lib/address-plan";
export * from "./lib/problems";
export * from "./lib/kv";
export * from "./lib/config";
export * from "./constructs/core/host-providers";
export { CONSUL_DNS_POLICY, CONSUL_TOKEN_PATH, renderConsulReadPolicy } from "./lib/render/consul-acl";
export type { ConsulReadAccess } from "./lib/render/consul-acl";
export type { WatchedTemplate } from "./lib/render/consul-template";
export * from "./constructs/core/service-container";
export type { LxdDevice, LxdInstanceResource, LxdVolumeResource } from "./constructs/core/lxd-dialect";
export * from "./constructs/core/container-revision";
export * from "./constructs/core/kv-entries";
export * from "./constructs/modules/certificate-domains";
export * from "./constructs/modules/ingress-backend";
export * from "./constructs/modules/ingress-route";
export * from "./constructs/modules/ingress-proxy";
export * from "./constructs/modules/ingress-tcp-listener";
export * from "./constructs/modules/postgres";
export * from "./constructs/modules/postgres-database";
export * from "./constructs/modules/wellknown-server";
export * from "./constructs/modules/wellknown-rule";
export * from "./constructs/modules/coturn";
export * from "./constructs/modules/turn-domain";
export * from "./constructs/modules/shared-modules";
export * from "./constructs/matrix/synapse";
export * from "./constructs/matrix/element-web";
export * from "./constructs/matrix/synapse-admin";
export * from "./constructs/matrix/matrix-standalone";
export * from "./constructs/matrix/matrix-standalone-stack";
