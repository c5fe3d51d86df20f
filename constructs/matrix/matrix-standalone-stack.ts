/**
 * The self-hoster's stack: providers for one host, the shared modules (or references to
 * modules another stack deployed), and one MatrixStandalone project, all from a validated
 * configuration file. The admin and SMTP passwords are sensitive Terraform variables
 * (TF_VAR_admin_password, TF_VAR_smtp_password), never part of the synthesized JSON.
 */
import { Construct } from "constructs";
import { TerraformOutput, TerraformStack, TerraformVariable } from "cdktf";
import { Host } from "../../lib/host";
import { RawConfig, hostPropsFromConfig } from "../../lib/config";
import { HostProviders } from "../core/host-providers";
import { SharedModules, SharedModuleRefs } from "../modules/shared-modules";
import { MatrixStandalone } from "./matrix-standalone";

export interface MatrixStandaloneStackProps {
  /** A configuration validated by `parseConfig`/`loadConfig`. */
  readonly config: RawConfig;
  /**
   * The host object, shared by every stack on the same host in this app so that its address
   * plan sees all of their addresses.
   * @default a new Host from `config.host`
   */
  readonly host?: Host;
  /**
   * Shared modules to register with. With `modules.deploy: false` and no refs given, the TURN
   * shared secret comes from the sensitive variable `turn_shared_secret`.
   * @default deployed by this stack when `modules.deploy` is true (the default)
   */
  readonly modules?: SharedModuleRefs;
}

/** Converts the file's host section to a Host. */
export function hostFromConfig(config: RawConfig): Host {
  return new Host(hostPropsFromConfig(config));
}

export class MatrixStandaloneStack extends TerraformStack {
  readonly host: Host;
  readonly modules: SharedModuleRefs;
  readonly matrix: MatrixStandalone;

  constructor(scope: Construct, id: string, props: MatrixStandaloneStackProps) {
    super(scope, id);
    const { config } = props;
    const project = config.project;
    this.host = props.host ?? hostFromConfig(config);
    new HostProviders(this, "providers", { host: this.host });

    const adminPassword = new TerraformVariable(this, "admin_password", {
      type: "string",
      sensitive: true,
      nullable: false,
      // No `validation` block: Terraform prints the value of a variable that fails validation.
      // The Synapse container's precondition checks the policy without printing it.
      description: `Password of the Matrix admin @${project.admin.username}:${project.domain} (at least 12 characters with lower case, upper case and a digit)`,
    });
    const smtpPassword =
      project.smtp?.username !== undefined
        ? new TerraformVariable(this, "smtp_password", { type: "string", sensitive: true, nullable: false, description: "Password of the SMTP account" })
        : undefined;

    const modules = config.modules ?? {};
    const coturn = modules.coturn ?? {};
    if (props.modules) {
      this.modules = props.modules;
    } else if (modules.deploy ?? true) {
      this.modules = new SharedModules(this, "modules", {
        host: this.host,
        ingressProxy: { image: modules.ingress_proxy?.image, hostPart: modules.ingress_proxy?.host_part },
        postgres: { image: modules.postgres?.image, hostPart: modules.postgres?.host_part },
        wellknown: { image: modules.wellknown?.image, hostPart: modules.wellknown?.host_part },
        coturn: {
          image: coturn.image,
          hostPart: coturn.host_part,
          listeningPort: coturn.listening_port,
          tlsListeningPort: coturn.tls_listening_port,
          minPort: coturn.min_port,
          maxPort: coturn.max_port,
          domain: project.turn_domain,
          adminEmail: project.admin.email,
        },
      });
      // A second project on this host (`modules.deploy: false`) needs coturn's secret as its
      // `turn_shared_secret` variable: `terraform output -raw turn_shared_secret`.
      new TerraformOutput(this, "turn_shared_secret", {
        value: this.modules.turn.sharedSecret,
        sensitive: true,
        description: "coturn's static-auth-secret, for other projects that register with these modules",
      });
    } else {
      const turnSecret = new TerraformVariable(this, "turn_shared_secret", {
        type: "string",
        sensitive: true,
        nullable: false,
        description: "coturn's static-auth-secret, from the stack that deployed the shared modules",
      });
      this.modules = SharedModules.reference(
        this.host,
        { sharedSecret: turnSecret.stringValue, listeningPort: coturn.listening_port, tlsListeningPort: coturn.tls_listening_port },
        { ingressProxy: { hostPart: modules.ingress_proxy?.host_part }, postgres: { hostPart: modules.postgres?.host_part } },
      );
    }

    this.matrix = new MatrixStandalone(this, "matrix", {
      host: this.host,
      modules: this.modules,
      projectId: project.id,
      domain: project.domain,
      turnDomain: project.turn_domain,
      admin: { username: project.admin.username, email: project.admin.email, password: adminPassword.stringValue },
      smtp: project.smtp && {
        host: project.smtp.host,
        port: project.smtp.port,
        user: project.smtp.username,
        password: smtpPassword?.stringValue,
        requireStartTls: project.smtp.starttls,
        implicitTls: project.smtp.ssl,
        notifFrom: project.smtp.from,
      },
      roomComplexity: project.room_complexity,
      allowPublicRoomsWithoutAuth: project.allow_public_rooms_without_auth,
      allowPublicRoomsOverFederation: project.allow_public_rooms_over_federation,
      element: {
        ...project.element,
        downloadUrl: project.element?.url,
        countryCode: project.default_country_code,
        footerLinks: project.element_footer_links,
      },
      synapse: project.synapse,
      synapseAdmin: { ...project.synapse_admin, downloadUrl: project.synapse_admin?.url },
      hostParts: {
        synapse: project.host_parts?.synapse,
        element: project.host_parts?.element,
        synapseAdmin: project.host_parts?.synapse_admin,
      },
    });
  }
}
