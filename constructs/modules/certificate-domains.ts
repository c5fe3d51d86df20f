/**
 * Asks the ingress proxy for Let's Encrypt certificates: one `service/certbot/<fqdn>` key per
 * domain, valued with the account e-mail. The proxy's certbot obtains and renews them.
 */
import { Construct } from "constructs";
import { KvEntries } from "../core/kv-entries";
import { kvPaths } from "../../lib/kv";
import { DOMAIN_RULE, Problems, isDomainName, EMAIL_RULE, isEmail } from "../../lib/problems";

export interface CertificateDomainsProps {
  readonly domains: readonly string[];
  /** Let's Encrypt account and expiry-notice address. */
  readonly adminEmail: string;
}

export class CertificateDomains extends Construct {
  readonly domains: readonly string[];

  constructor(scope: Construct, id: string, props: CertificateDomainsProps) {
    super(scope, id);
    const problems = new Problems();
    props.domains.forEach((d, i) => problems.check(isDomainName(d), `domains[${i}]`, `must be ${DOMAIN_RULE}, got ${JSON.stringify(d)}`));
    problems.check(isEmail(props.adminEmail), "adminEmail", `must be ${EMAIL_RULE}, got ${JSON.stringify(props.adminEmail)}`);
    problems.throwIfAny(`${this.node.path}: invalid CertificateDomains props`);
    this.domains = [...new Set(props.domains)];
    new KvEntries(this, "kv", Object.fromEntries(this.domains.map((d) => [kvPaths.certificateDomain(d), props.adminEmail])));
  }
}
