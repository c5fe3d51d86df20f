/**
 * Address ranges that no service should reach on a user's behalf: private, loopback,
 * link-local, CGNAT, documentation, benchmarking, multicast and reserved IPv4 ranges, and the
 * IPv6 ranges that are special or embed IPv4 addresses (mapped, NAT64, 6to4, Teredo) and so
 * could reach private IPv4 space. coturn denies them as relay peers; Synapse never fetches
 * URL previews from them.
 */
export const SPECIAL_PURPOSE_NETWORKS: readonly string[] = [
  "0.0.0.0/8",
  "10.0.0.0/8",
  "100.64.0.0/10",
  "127.0.0.0/8",
  "169.254.0.0/16",
  "172.16.0.0/12",
  "192.0.0.0/24",
  "192.0.2.0/24",
  "192.88.99.0/24",
  "192.168.0.0/16",
  "198.18.0.0/15",
  "198.51.100.0/24",
  "203.0.113.0/24",
  "224.0.0.0/4",
  "240.0.0.0/4",
  "::/128",
  "::1/128",
  "::/96",
  "::ffff:0:0/96",
  "64:ff9b::/96",
  "64:ff9b:1::/48",
  "100::/64",
  "2001::/23",
  "2001:db8::/32",
  "2002::/16",
  "3fff::/20",
  "fc00::/7",
  "fe80::/10",
  "fec0::/10",
  "ff00::/8",
];
