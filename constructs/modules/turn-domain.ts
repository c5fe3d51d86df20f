/**
 * Names the host's TURN server: `service/coturn/coturn-domain` (coturn's realm and certificate)
 * and `coturn-domain-admin-email`, plus the ingress proxy's certificate request
 * `service/certbot/<domain>`. ryo's coturn container wrote that last key itself, so Terraform
 * never removed it (§13.5); here all three keys are Terraform's and go away on destroy.
 * It needs the ingress proxy (which obtains the certificate) and Coturn, possibly in other stacks.
 */
import { Construct } from "constructs";
import { TerraformStack } from "cdktf";
import { KvEntries } from "../core/kv-entries";
import { CertificateDomains } from "./certificate-domains";
import { kvPaths } from "../../lib/kv";
import { DOMAIN_RULE, Problems, isDomainName, EMAIL_RULE, isEmail } from "../../lib/problems";

export interface TurnDomainProps {
  /** The TURN server's DNS name, e.g. `turn.example.com`; it must resolve to the host's public address. */
  readonly domain: string;
  /** Let's Encrypt account and expiry-notice address for its certificate. */
  readonly adminEmail: string;
}

export class TurnDomain extends Construct {
  readonly domain: string;

  constructor(scope: Construct, id: string, props: TurnDomainProps) {
    super(scope, id);
    const problems = new Problems();
    problems.check(isDomainName(props.domain), "domain", `must be ${DOMAIN_RULE}, got ${JSON.stringify(props.domain)}`);
    problems.check(isEmail(props.adminEmail), "adminEmail", `must be ${EMAIL_RULE}, got ${JSON.stringify(props.adminEmail)}`);
    problems.throwIfAny(`${this.node.path}: invalid TurnDomain props`);
    this.domain = props.domain;

    new KvEntries(this, "kv", {
      [kvPaths.coturnDomain]: props.domain,
      [kvPaths.coturnDomainAdminEmail]: props.adminEmail,
      [kvPaths.certificateDomain(props.domain)]: props.adminEmail,
    });

    // Two owners of one key would delete it for each other on destroy (within this stack's Consul).
    this.node.addValidation({
      validate: () => {
        const all = TerraformStack.of(this).node.findAll();
        const errors: string[] = [];
        const others = all.filter((c): c is TurnDomain => c instanceof TurnDomain && c !== this);
        if (others.length > 0) {
          errors.push(`only one TurnDomain per stack (one Consul KV): ${this.node.path} and ${others.map((o) => o.node.path).join(", ")} both write ${kvPaths.coturnDomain}`);
        }
        for (const c of all) {
          if (c instanceof CertificateDomains && c.domains.includes(props.domain)) {
            errors.push(`${c.node.path} also requests a certificate for ${props.domain}; TurnDomain ${this.node.path} does that already, remove it there`);
          }
        }
        return errors;
      },
    });
  }
}
