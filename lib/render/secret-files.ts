/**
 * Secrets reach a container as files pushed through the LXD API (ServiceContainer's `secrets`),
 * never through cloud-init: LXD hands the user-data to anything in the container that asks
 * (`/dev/lxd/sock`, and cloud-init's LXD datasource copies it into the world-readable
 * `/run/cloud-init/instance-data.json`). A pushed file is owned by root with a mode that gives
 * other users nothing; the service's own first-boot step hands it to the service's group, whose
 * id only the image knows. Terraform pushes the files once the container runs, while cloud-init
 * is already at work, so the first-boot commands wait for them (secretsWaitCommand).
 */
import { shellQuote } from "./shell";

/** One secret file in a container. */
export interface SecretFile {
  /** Short name, unique within the container: the Terraform resource is `secret-<name>`. */
  readonly name: string;
  /** Absolute path inside the container; missing directories are created (root-owned). */
  readonly path: string;
  /** The content: a Terraform token, or a string holding one (a literal would be written into cdktf.out). */
  readonly content: string;
  /** Octal mode; group and others may never write, others never read. @default "0600" */
  readonly mode?: string;
}

/** How long the first boot waits for Terraform to push the secret files. */
export const SECRET_DELIVERY_TIMEOUT_SECONDS = 600;

/** Modes a secret file may have: owner read(/write), group at most read, others nothing. */
export const SECRET_MODE_PATTERN = /^0?[46][04]0$/;

/**
 * One runcmd line that waits until every file in `paths` is non-empty, and fails with a message
 * naming the missing files after `timeoutSeconds`.
 */
export function secretsWaitCommand(paths: readonly string[], timeoutSeconds = SECRET_DELIVERY_TIMEOUT_SECONDS): string {
  const list = paths.map(shellQuote).join(" ");
  return (
    `waited=0; while :; do missing=""; for f in ${list}; do [ -s "$f" ] || missing="$missing $f"; done; ` +
    `[ -z "$missing" ] && break; ` +
    `if [ "$waited" -ge ${timeoutSeconds} ]; then echo "secret files not delivered after ${timeoutSeconds} s:$missing (Terraform pushes them through the LXD API after the container started; was the apply interrupted?)" >&2; exit 1; fi; ` +
    `sleep 2; waited=$((waited + 2)); done`
  );
}
