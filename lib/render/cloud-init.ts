/**
 * Renders the cloud-init user-data that turns a fresh container into a service: packages to
 * install (skipped on pre-built images), files to write and commands to run once.
 */
import { stringify } from "yaml";

export interface CloudInitFile {
  readonly path: string;
  readonly content: string;
  /** Octal mode. @default "0644" */
  readonly permissions?: string;
  /** @default "root:root" */
  readonly owner?: string;
}

export interface CloudInitOptions {
  /** Debian packages to install; empty on images that already carry the software. @default none */
  readonly packages?: readonly string[];
  readonly files?: readonly CloudInitFile[];
  /**
   * Shell commands run once, in order, after the files are written (`runcmd`). They run under
   * `set -e`: the first command that fails stops the setup (later commands do not run) and
   * cloud-init reports `status: error`. The shell does not stop for a failure on the left of
   * `&&` (POSIX), so give steps that must succeed as separate commands, not as `a && b`.
   * @default none
   */
  readonly commands?: readonly string[];
}

/** The first runcmd line: stop at the first failing command. */
export const RUNCMD_PROLOGUE = "set -e";

export function renderCloudInit(options: CloudInitOptions): string {
  const doc: Record<string, unknown> = {};
  const packages = options.packages ?? [];
  if (packages.length > 0) {
    doc.package_update = true;
    doc.packages = [...packages];
  }
  doc.package_upgrade = false;
  if (options.files && options.files.length > 0) {
    doc.write_files = options.files.map((f) => ({
      path: f.path,
      content: f.content,
      owner: f.owner ?? "root:root",
      permissions: f.permissions ?? "0644",
    }));
  }
  if (options.commands && options.commands.length > 0) {
    // cloud-init runs runcmd as one `#!/bin/sh` script and judges it by its exit status, which
    // without -e is only the last command's: a failed `nft -f` would leave the services running
    // with no firewall and cloud-init reporting `done`.
    doc.runcmd = [RUNCMD_PROLOGUE, ...options.commands];
  }
  return `#cloud-config\n${stringify(doc, { lineWidth: 0, blockQuote: "literal" })}`;
}
