/**
 * Renders a container's nftables ruleset: drop by default, accept established traffic,
 * loopback, the ICMP/ICMPv6 types a network needs, and exactly the service ports listed.
 */

export interface FirewallRule {
  readonly protocol: "tcp" | "udp";
  /** Single ports or inclusive [first, last] ranges. */
  readonly ports: readonly (number | readonly [number, number])[];
  /** Source CIDRs or addresses (IPv4 and IPv6 mixed). @default any source */
  readonly from?: readonly string[];
  /** Why the port is open; becomes an nftables comment. */
  readonly comment: string;
}

export interface FirewallOptions {
  readonly rules: readonly FirewallRule[];
}

const portList = (ports: FirewallRule["ports"]): string =>
  `{ ${ports.map((p) => (typeof p === "number" ? String(p) : `${p[0]}-${p[1]}`)).join(", ")} }`;

const nftString = (text: string): string => `"${text.replace(/["\\]/g, "")}"`;

function ruleLines(rule: FirewallRule): string[] {
  const match = `${rule.protocol} dport ${portList(rule.ports)}`;
  const comment = `comment ${nftString(rule.comment)}`;
  if (!rule.from) return [`${match} accept ${comment}`];
  const v4 = rule.from.filter((a) => !a.includes(":"));
  const v6 = rule.from.filter((a) => a.includes(":"));
  const lines: string[] = [];
  if (v4.length > 0) lines.push(`ip saddr { ${v4.join(", ")} } ${match} accept ${comment}`);
  if (v6.length > 0) lines.push(`ip6 saddr { ${v6.join(", ")} } ${match} accept ${comment}`);
  return lines;
}

export function renderNftables(options: FirewallOptions): string {
  const service = options.rules.flatMap(ruleLines).map((l) => `    ${l}`);
  return [
    "#!/usr/sbin/nft -f",
    "flush ruleset",
    "",
    "table inet filter {",
    "  chain input {",
    "    type filter hook input priority filter; policy drop;",
    "    ct state invalid drop",
    "    ct state { established, related } accept",
    '    iif "lo" accept',
    "    ip protocol icmp icmp type { echo-request, echo-reply, destination-unreachable, time-exceeded } accept",
    "    ip6 nexthdr icmpv6 icmpv6 type { echo-request, echo-reply, destination-unreachable, packet-too-big, time-exceeded, parameter-problem, nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert } accept",
    '    udp dport 546 ip6 saddr fe80::/10 accept comment "DHCPv6 client"',
    ...service,
    "  }",
    "  chain forward {",
    "    type filter hook forward priority filter; policy drop;",
    "  }",
    "  chain output {",
    "    type filter hook output priority filter; policy accept;",
    "  }",
    "}",
    "",
  ].join("\n");
}

const TEMPLATE_MARKER = "@@template-rules@@";

/**
 * A consul-template template of the ruleset: `rules` as renderNftables renders them, followed
 * in the input chain by `templateRules`, Go template text whose rendered lines each start with
 * "\n    " (e.g. a `range` over KV keys). With `templateRules` rendering nothing it renders
 * exactly `renderNftables({ rules })`.
 */
export function renderNftablesTemplate(rules: readonly FirewallRule[], templateRules: string): string {
  // renderNftables has no hook for raw lines: render a placeholder rule and splice the
  // template text over its line.
  const text = renderNftables({ rules: [...rules, { protocol: "tcp", ports: [1], comment: TEMPLATE_MARKER }] });
  const lines = text.split("\n");
  const at = lines.findIndex((l) => l.includes(TEMPLATE_MARKER));
  if (at < 0 || lines.findIndex((l, i) => i > at && l.includes(TEMPLATE_MARKER)) >= 0) {
    throw new Error("renderNftablesTemplate: the placeholder rule must render as exactly one line");
  }
  lines[at - 1] += templateRules;
  lines.splice(at, 1);
  return lines.join("\n");
}
