/**
 * Public entry point of the library: the host description, the shared modules' deployment and
 * registration constructs, the Matrix constructs and stack, and the configuration loader.
 */
export * from "./lib/host";
export * from "./lib/address-plan";
export * from "./lib/problems";
export * from "./lib/kv";
export * from "./lib/config";
export * from "./constructs/host-providers";
export * from "./constructs/service-container";
export * from "./constructs/container-revision";
export * from "./constructs/kv-entries";
export * from "./constructs/certificate-domains";
export * from "./constructs/ingress-backend";
export * from "./constructs/ingress-route";
export * from "./constructs/ingress-proxy";
export * from "./constructs/ingress-tcp-listener";
export * from "./constructs/postgres";
export * from "./constructs/postgres-database";
export * from "./constructs/wellknown-server";
export * from "./constructs/wellknown-rule";
export * from "./constructs/coturn";
export * from "./constructs/turn-domain";
export * from "./constructs/shared-modules";
export * from "./constructs/synapse";
export * from "./constructs/element-web";
export * from "./constructs/synapse-admin";
export * from "./constructs/matrix-standalone";
export * from "./constructs/matrix-standalone-stack";
