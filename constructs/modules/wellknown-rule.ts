/**
 * Registration constructs for the well-known server: a project answers `/.well-known/<path>` on
 * one of its domains with a JSON document (WellknownJsonRule) or a redirect
 * (WellknownRedirectRule). Each rule owns exactly its own Consul keys
 * (`service/wellknown/{json,redirects}/<domain>/<rule>/…`, read by the server's consul-template)
 * and its own ingress route (ACL `wellknown-<domain with dashes>-<rule>`, host + path → the
 * server's backend), so destroying one rule removes nothing another rule needs. It needs a
 * WellknownServer (or a reference to one) and the ingress proxy; the certificate for the
 * domain is the project's to request.
 */
import { Construct } from "constructs";
import type { Host } from "../../lib/host";
import { KvEntries } from "../core/kv-entries";
import { IngressRoute } from "./ingress-route";
import type { WellknownRef } from "./wellknown-server";
import { kvPaths } from "../../lib/kv";
import { DOMAIN_RULE, Problems, isDomainName } from "../../lib/problems";
import { isWellknownLocation, isWellknownUrl } from "../../lib/render/wellknown";

export interface WellknownRuleProps {
  readonly wellknown: WellknownRef;
  /** Rule id, unique per domain; prefix it with the project id (e.g. `matrix-client`). */
  readonly name: string;
  /** The domain the rule answers on, e.g. the bare Matrix server name. */
  readonly domain: string;
  /** The exact path, e.g. `/.well-known/matrix/client`. */
  readonly path: string;
}

export interface WellknownJsonRuleProps extends WellknownRuleProps {
  /** The JSON document (an object or an array), served with `application/json` and `Access-Control-Allow-Origin: *`. */
  readonly payload: object;
}

export interface WellknownRedirectRuleProps extends WellknownRuleProps {
  /** Target of the 301 redirect: an http(s) URL. */
  readonly url: string;
}

const RULE_NAME = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
const PATH_RULE = 'an absolute path starting with "/" of letters, digits and . _ ~ ! & ( ) * + , = : @ % / -';

/** Rules already registered on each host, to refuse a second owner of the same keys or path. */
const registered = new WeakMap<Host, Map<string, string>>();

abstract class WellknownRuleBase extends Construct {
  readonly domain: string;
  readonly path: string;
  readonly ruleName: string;
  /** The HAProxy ACL routing this rule to the server. */
  readonly aclName: string;

  protected constructor(scope: Construct, id: string, props: WellknownRuleProps, kind: string, valueProblems: (p: Problems) => void) {
    super(scope, id);
    const problems = new Problems();
    problems.check(
      RULE_NAME.test(props.name),
      "name",
      `must be lower-case letters, digits and dashes (not first or last), at most 63 characters, got ${JSON.stringify(props.name)}`,
    );
    problems.check(isDomainName(props.domain), "domain", `must be ${DOMAIN_RULE}, got ${JSON.stringify(props.domain)}`);
    problems.check(isWellknownLocation(props.path), "path", `must be ${PATH_RULE}, got ${JSON.stringify(props.path)}`);
    valueProblems(problems);
    problems.throwIfAny(`${this.node.path}: invalid ${kind} props`);

    this.domain = props.domain;
    this.path = props.path;
    this.ruleName = props.name;
    this.aclName = `wellknown-${props.domain.replace(/\./g, "-")}-${props.name}`;
    this.claim(props);
  }

  /**
   * Two rules with one id on one domain would own the same keys; two with one path would shadow
   * each other. Claims are per host: that is where the keys meet, whatever stacks they come from.
   */
  private claim(props: WellknownRuleProps): void {
    const claims = registered.get(props.wellknown.host) ?? new Map<string, string>();
    registered.set(props.wellknown.host, claims);
    for (const [key, what] of [
      [`rule ${props.domain} ${props.name}`, `rule id ${JSON.stringify(props.name)} on ${props.domain}`],
      [`path ${props.domain} ${props.path}`, `path ${props.path} on ${props.domain}`],
      [`acl ${this.aclName}`, `ingress ACL ${this.aclName}`],
    ]) {
      const owner = claims.get(key);
      if (owner !== undefined) throw new Error(`${this.node.path}: ${what} is already registered by ${owner}; choose another`);
    }
    claims.set(`rule ${props.domain} ${props.name}`, this.node.path);
    claims.set(`path ${props.domain} ${props.path}`, this.node.path);
    claims.set(`acl ${this.aclName}`, this.node.path);
  }

  protected register(wellknown: WellknownRef, entries: Record<string, string>): void {
    new KvEntries(this, "kv", entries);
    new IngressRoute(this, "route", {
      name: this.aclName,
      host: this.domain,
      path: this.path,
      action: { backend: wellknown.serviceName },
    });
  }
}

/** Serves a JSON document at `https://<domain><path>`. */
export class WellknownJsonRule extends WellknownRuleBase {
  /** The payload as stored in Consul and served. */
  readonly payload: string;

  constructor(scope: Construct, id: string, props: WellknownJsonRuleProps) {
    let payload = "";
    super(scope, id, props, "WellknownJsonRule", (problems) => {
      const problem = jsonProblem(props.payload, "payload");
      if (problem) problems.add(problem.path, problem.message);
      else payload = JSON.stringify(props.payload);
    });
    this.payload = payload;
    const base = kvPaths.wellknownJson(props.domain, props.name);
    this.register(props.wellknown, { [`${base}/location`]: props.path, [`${base}/payload`]: payload });
  }
}

/** Redirects `https://<domain><path>` to a URL (301). */
export class WellknownRedirectRule extends WellknownRuleBase {
  readonly url: string;

  constructor(scope: Construct, id: string, props: WellknownRedirectRuleProps) {
    super(scope, id, props, "WellknownRedirectRule", (problems) =>
      problems.check(
        typeof props.url === "string" && isWellknownUrl(props.url),
        "url",
        `must be an http(s) URL without spaces or control characters, got ${JSON.stringify(props.url)}`,
      ),
    );
    this.url = props.url;
    const base = kvPaths.wellknownRedirect(props.domain, props.name);
    this.register(props.wellknown, { [`${base}/location`]: props.path, [`${base}/url`]: props.url });
  }
}

/** The first thing in `value` that JSON cannot carry faithfully, with its path; undefined when there is none. */
function jsonProblem(value: unknown, path: string, seen = new Set<object>()): { path: string; message: string } | undefined {
  const top = path === "payload";
  if (top && (typeof value !== "object" || value === null)) {
    return { path, message: `must be a JSON object or array, got ${value === null ? "null" : typeof value}` };
  }
  switch (typeof value) {
    case "string":
    case "boolean":
      return undefined;
    case "number":
      return Number.isFinite(value) ? undefined : { path, message: `${value} is not a JSON number` };
    case "object": {
      if (value === null) return undefined;
      if (seen.has(value)) return { path, message: "refers to itself (a cycle cannot be serialized)" };
      const proto = Object.getPrototypeOf(value);
      if (!Array.isArray(value) && proto !== Object.prototype && proto !== null) {
        return { path, message: `is a ${proto?.constructor?.name ?? "non-plain"} object, not plain JSON data` };
      }
      seen.add(value);
      const entries = Array.isArray(value) ? value.map((v, i) => [`[${i}]`, v] as const) : Object.entries(value).map(([k, v]) => [`.${k}`, v] as const);
      for (const [key, child] of entries) {
        const problem = jsonProblem(child, `${path}${key}`, seen);
        if (problem) return problem;
      }
      seen.delete(value);
      return undefined;
    }
    default:
      return { path, message: `is ${typeof value}, which JSON cannot represent` };
  }
}
