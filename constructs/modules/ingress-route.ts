/**
 * One routing rule of the ingress proxy's HTTPS frontend: an ACL (host, path prefix, or both)
 * and what to do on a match: send to a backend, deny with 403, or redirect to a prefix.
 * The proxy applies denies first, then redirects, then backends (host+path, path, host).
 */
import { Construct } from "constructs";
import { KvEntries } from "../core/kv-entries";
import { kvPaths } from "../../lib/kv";
import { DOMAIN_RULE, Problems, isDomainName } from "../../lib/problems";

export type IngressAction =
  | { readonly backend: string }
  | { readonly deny: true }
  | { readonly redirectPrefix: string };

export interface IngressRouteProps {
  /** ACL name, unique on the host; prefix it with the project id. */
  readonly name: string;
  /** Match the Host header. @default any host */
  readonly host?: string;
  /** Match a path prefix (starting with `/`). @default any path */
  readonly path?: string;
  readonly action: IngressAction;
}

export class IngressRoute extends Construct {
  readonly aclName: string;

  constructor(scope: Construct, id: string, props: IngressRouteProps) {
    super(scope, id);
    const problems = new Problems();
    problems.check(/^[a-z0-9][a-z0-9-]*$/.test(props.name), "name", `must be lower-case letters, digits and dashes, got ${JSON.stringify(props.name)}`);
    problems.check(props.host !== undefined || props.path !== undefined, "host", "an ingress route needs a host, a path or both");
    if (props.host !== undefined) problems.check(isDomainName(props.host), "host", `must be ${DOMAIN_RULE}, got ${JSON.stringify(props.host)}`);
    if (props.path !== undefined) {
      problems.check(/^\/[^\s'"{}]*$/.test(props.path), "path", `must start with "/" and contain no spaces, quotes or braces, got ${JSON.stringify(props.path)}`);
    }
    if ("redirectPrefix" in props.action) {
      problems.check(/^https?:\/\/\S+$/.test(props.action.redirectPrefix), "action.redirectPrefix", `must be an http(s) URL, got ${JSON.stringify(props.action.redirectPrefix)}`);
    }
    problems.throwIfAny(`${this.node.path}: invalid IngressRoute props`);

    this.aclName = props.name;
    const entries: Record<string, string> = {};
    if (props.host !== undefined) entries[kvPaths.aclHost(props.name)] = props.host;
    if (props.path !== undefined) entries[kvPaths.aclPath(props.name)] = props.path;
    const acl = new KvEntries(this, "acl", entries);

    const action = props.action;
    const actionEntry =
      "backend" in action
        ? { [kvPaths.useBackend(props.name)]: action.backend }
        : "deny" in action
          ? { [kvPaths.deny(props.name)]: "" }
          : { [kvPaths.redirect(props.name)]: action.redirectPrefix };
    // The action goes in after its ACL, so the proxy never renders a rule with no ACL.
    new KvEntries(this, "action", actionEntry, [acl.resource]);
  }
}
