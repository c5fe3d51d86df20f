/**
 * The well-known server's nginx site. Projects register rules in Consul KV
 * (`service/wellknown/json/<domain>/<rule>/{location,payload}` and
 * `service/wellknown/redirects/<domain>/<rule>/{location,url}`); consul-template renders them with
 * `renderWellknownSiteTemplate()` into one `server` block per domain. The set of domains is derived
 * from the rule trees, so no key is shared between rules; `service/wellknown/domains/<domain>`
 * keys written by older projects are still honoured. `renderWellknownSite()` produces the same
 * text from an in-memory rule list (for the first boot and for tests).
 *
 * Every value from the KV store is untrusted text: domains and locations are checked against
 * strict patterns (rules that fail are left out), payloads and URLs are written as escaped
 * single-quoted nginx strings, and `$` is routed through a variable so nginx never interpolates it.
 */
import { KV_PREFIX } from "../kv";

/** A rule that answers `location = <location>` with a JSON document. */
export interface WellknownJsonEntry {
  readonly kind: "json";
  readonly domain: string;
  /** Rule id, unique per domain. */
  readonly rule: string;
  readonly location: string;
  /** The JSON document; a payload wrapped in single quotes (as older projects stored it) is unwrapped. */
  readonly payload: string;
}

/** A rule that answers `location = <location>` with a 301 redirect. */
export interface WellknownRedirectEntry {
  readonly kind: "redirect";
  readonly domain: string;
  readonly rule: string;
  readonly location: string;
  readonly url: string;
}

export type WellknownEntry = WellknownJsonEntry | WellknownRedirectEntry;

export const WELLKNOWN_KV = {
  json: `${KV_PREFIX.wellknown}/json/`,
  redirects: `${KV_PREFIX.wellknown}/redirects/`,
  /** Written by older projects, one key per domain; still read, never written by us. */
  legacyDomains: `${KV_PREFIX.wellknown}/domains/`,
} as const;

// The patterns below are used verbatim by Go's RE2 (in the template) and by JavaScript (in
// renderWellknownSite and the constructs), so they stick to syntax both read identically.

/** Domains the site serves: lower-case DNS names with at least two labels. */
export const WELLKNOWN_DOMAIN_PATTERN = "(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\\.)+[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?";
/** Locations: an absolute path of URL characters that are safe as a bare nginx token. */
export const WELLKNOWN_LOCATION_PATTERN = "/[A-Za-z0-9._~!&()*+,=:@%/-]*";
/** Redirect targets: an http(s) URL of printable ASCII without spaces (no header injection). */
export const WELLKNOWN_URL_PATTERN = "https?://[!-~]+";

const DOLLAR_VARIABLE = "wellknown_dollar";
const DOLLAR = "${" + DOLLAR_VARIABLE + "}";

const HEADER = [
  "# The well-known server's site, rendered by consul-template from Consul KV",
  `# ${WELLKNOWN_KV.json}, ${WELLKNOWN_KV.redirects} and ${WELLKNOWN_KV.legacyDomains}. Do not edit.`,
  "server_tokens off;",
  "",
  "# Payloads are nginx strings in which `$` starts a variable; a literal `$` is written as this variable.",
  `geo $${DOLLAR_VARIABLE} {`,
  '    default "$";',
  "}",
  "",
  "# Requests for any other host name.",
  "server {",
  "    listen 80 default_server;",
  "    listen [::]:80 default_server;",
  "    server_name _;",
  "    return 404;",
  "}",
].join("\n");

const SERVER_OPEN = (domain: string) => ["", "", "server {", "    listen 80;", "    listen [::]:80;", `    server_name ${domain};`].join("\n");
const JSON_LOCATION = (location: string, payload: string) =>
  [
    "",
    "",
    `    location = ${location} {`,
    "        default_type application/json;",
    "        add_header Access-Control-Allow-Origin * always;",
    `        return 200 '${payload}';`,
    "    }",
  ].join("\n");
const REDIRECT_LOCATION = (location: string, url: string) =>
  ["", "", `    location = ${location} {`, `        return 301 '${url}';`, "    }"].join("\n");
const SERVER_CLOSE = ["", "", "    location / {", "        return 404;", "    }", "}"].join("\n");

/**
 * The consul-template template for the nginx site. Its output for a given KV store is exactly
 * `renderWellknownSite(wellknownEntriesFromKv(kv))`.
 */
export function renderWellknownSiteTemplate(): string {
  const domainRe = `\`^${WELLKNOWN_DOMAIN_PATTERN}$\``;
  const ruleKeyRe = (fields: string) => `\`^(?:${WELLKNOWN_DOMAIN_PATTERN})/[^/]+/(?:${fields})$\``;
  const escape = '| replaceAll `\\` `\\\\` | replaceAll "\'" `\\\'` | replaceAll "$" "' + DOLLAR + '"';
  // Each action line starts with `{{-`, which drops the newline before it, so the output is
  // exactly the text blocks; a block's first newline is the one that ends the action line above.
  const text = (block: string) => block.slice(1);
  const collect = (tree: string, kind: string, fields: string) => [
    `{{- range tree "${tree}" }}`,
    `{{- if regexMatch ${ruleKeyRe(fields)} .Key }}`,
    '{{- $p := split "/" .Key }}',
    '{{- scratch.MapSet "domains" (index $p 0) (index $p 0) }}',
    `{{- scratch.MapSet (printf "${kind}:%s" (index $p 0)) (index $p 1) (index $p 1) }}`,
    `{{- scratch.Set (printf "${kind}:%s/%s/%s" (index $p 0) (index $p 1) (index $p 2)) .Value }}`,
    "{{- end }}",
    "{{- end }}",
  ];
  // A location is served by the first rule that claims it (JSON rules first, then redirects,
  // each in rule-id order): a duplicate location would make nginx refuse the whole site.
  const rules = (kind: string, valueField: string, valueRe: string | undefined, block: string) => [
    `{{- range $rule := scratch.MapValues (printf "${kind}:%s" $domain) }}`,
    `{{- $base := printf "${kind}:%s/%s/" $domain $rule }}`,
    `{{- if and (scratch.Key (print $base "location")) (scratch.Key (print $base "${valueField}")) }}`,
    '{{- $location := scratch.Get (print $base "location") }}',
    `{{- $value := scratch.Get (print $base "${valueField}") }}`,
    ...(kind === "json" ? ['{{- $value = regexReplaceAll "(?s)^\'(.*)\'$" "${1}" $value }}'] : []),
    `{{- if and (regexMatch \`^${WELLKNOWN_LOCATION_PATTERN}$\` $location)${valueRe ? ` (regexMatch \`^${valueRe}$\` $value)` : ""} (not (scratch.Key (printf "location:%s %s" $domain $location))) }}`,
    '{{- scratch.Set (printf "location:%s %s" $domain $location) true }}',
    `{{- $value = $value ${escape} }}`,
    text(block),
    "{{- end }}",
    "{{- end }}",
    "{{- end }}",
  ];
  return [
    HEADER,
    `{{- range ls "${WELLKNOWN_KV.legacyDomains}" }}`,
    `{{- if regexMatch ${domainRe} .Key }}{{ scratch.MapSet "domains" .Key .Key }}{{ end }}`,
    "{{- end }}",
    ...collect(WELLKNOWN_KV.json, "json", "location|payload"),
    ...collect(WELLKNOWN_KV.redirects, "redirect", "location|url"),
    '{{- range $domain := scratch.MapValues "domains" }}',
    text(SERVER_OPEN("{{ $domain }}")),
    ...rules("json", "payload", undefined, JSON_LOCATION("{{ $location }}", "{{ $value }}")),
    ...rules("redirect", "url", WELLKNOWN_URL_PATTERN, REDIRECT_LOCATION("{{ $location }}", "{{ $value }}")),
    text(SERVER_CLOSE),
    "{{- end }}",
    "",
  ].join("\n");
}

const anchored = (pattern: string) => new RegExp(`^(?:${pattern})$`);
const DOMAIN_RE = anchored(WELLKNOWN_DOMAIN_PATTERN);
const LOCATION_RE = anchored(WELLKNOWN_LOCATION_PATTERN);
const URL_RE = anchored(WELLKNOWN_URL_PATTERN);

export const isWellknownDomain = (value: string): boolean => DOMAIN_RE.test(value);
export const isWellknownLocation = (value: string): boolean => LOCATION_RE.test(value);
export const isWellknownUrl = (value: string): boolean => URL_RE.test(value);

/** An nginx single-quoted string body: `\` and `'` escaped, `$` kept literal. */
export function nginxStringBody(value: string): string {
  return value.replace(/[\\'$]/g, (c) => (c === "$" ? DOLLAR : `\\${c}`));
}

/** Older projects stored payloads as nginx string literals: `'…'`. */
export function unwrapLegacyPayload(payload: string): string {
  const m = /^'([\s\S]*)'$/.exec(payload);
  return m ? m[1] : payload;
}

// Go's sort.Strings order (bytewise for the ASCII names that pass the patterns).
const byString = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/**
 * The nginx site for these rules: one server block per domain of a rule or of `extraDomains`
 * (which get a server block even without a usable rule, as the template does for legacy domain
 * keys and for domains whose rules are incomplete or invalid).
 */
export function renderWellknownSite(entries: readonly WellknownEntry[], extraDomains: readonly string[] = []): string {
  const domains = new Set<string>(extraDomains.filter(isWellknownDomain));
  for (const e of entries) if (isWellknownDomain(e.domain)) domains.add(e.domain);

  let out = HEADER;
  for (const domain of [...domains].sort(byString)) {
    out += SERVER_OPEN(domain);
    const claimed = new Set<string>();
    const ofKind = <K extends WellknownEntry["kind"]>(kind: K) =>
      // The KV store holds one value per key: the last entry for a rule id wins.
      [...new Map(entries.filter((e) => e.kind === kind && e.domain === domain).map((e) => [e.rule, e])).values()]
        .sort((a, b) => byString(a.rule, b.rule)) as Extract<WellknownEntry, { kind: K }>[];
    for (const e of ofKind("json")) {
      if (!isWellknownLocation(e.location) || claimed.has(e.location)) continue;
      claimed.add(e.location);
      out += JSON_LOCATION(e.location, nginxStringBody(unwrapLegacyPayload(e.payload)));
    }
    for (const e of ofKind("redirect")) {
      if (!isWellknownLocation(e.location) || !isWellknownUrl(e.url) || claimed.has(e.location)) continue;
      claimed.add(e.location);
      out += REDIRECT_LOCATION(e.location, nginxStringBody(e.url));
    }
    out += SERVER_CLOSE;
  }
  return `${out}\n`;
}

/**
 * Reads a KV snapshot (full key → value) the way the template does: complete rules under the
 * json and redirects trees, and every domain that has a server block (legacy domain keys and
 * domains with any well-formed rule key). Malformed keys are ignored.
 */
export function wellknownEntriesFromKv(kv: Readonly<Record<string, string>>): { entries: WellknownEntry[]; domains: string[] } {
  const rules = new Map<string, Record<string, string>>();
  const domains = new Set<string>();
  const trees = [
    { prefix: WELLKNOWN_KV.json, kind: "json", fields: ["location", "payload"] },
    { prefix: WELLKNOWN_KV.redirects, kind: "redirect", fields: ["location", "url"] },
  ] as const;
  for (const [path, value] of Object.entries(kv)) {
    if (path.startsWith(WELLKNOWN_KV.legacyDomains)) {
      const key = path.slice(WELLKNOWN_KV.legacyDomains.length).replace(/^\/+/, "");
      if (isWellknownDomain(key)) domains.add(key);
      continue;
    }
    for (const tree of trees) {
      if (!path.startsWith(tree.prefix)) continue;
      const parts = path.slice(tree.prefix.length).replace(/^\/+/, "").split("/");
      if (parts.length !== 3 || !isWellknownDomain(parts[0]) || parts[1] === "" || !(tree.fields as readonly string[]).includes(parts[2])) continue;
      domains.add(parts[0]);
      const id = `${tree.kind}\n${parts[0]}\n${parts[1]}`;
      rules.set(id, { ...rules.get(id), kind: tree.kind, domain: parts[0], rule: parts[1], [parts[2]]: value });
    }
  }
  const entries: WellknownEntry[] = [];
  for (const r of rules.values()) {
    if (r.kind === "json" && r.location !== undefined && r.payload !== undefined) {
      entries.push({ kind: "json", domain: r.domain, rule: r.rule, location: r.location, payload: r.payload });
    } else if (r.kind === "redirect" && r.location !== undefined && r.url !== undefined) {
      entries.push({ kind: "redirect", domain: r.domain, rule: r.rule, location: r.location, url: r.url });
    }
  }
  return { entries, domains: [...domains] };
}

/** `renderWellknownSite` for a KV snapshot: what consul-template renders from the same store. */
export function renderWellknownSiteFromKv(kv: Readonly<Record<string, string>>): string {
  const { entries, domains } = wellknownEntriesFromKv(kv);
  return renderWellknownSite(entries, domains);
}
