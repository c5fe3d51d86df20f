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
  /** Shell commands run once, in order, after the files are written (`runcmd`). @default none */
  readonly commands?: readonly string[];
}

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
    doc.runcmd = [...options.commands];
  }
  return `#cloud-config\n${stringify(doc, { lineWidth: 0, blockQuote: "literal" })}`;
}
