/**
 * Serving a pre-built web application (Element Web, synapse-admin) from nginx inside its
 * container: the nginx site with the security headers such apps want, and the cloud-init
 * commands that install a release tarball pinned by version and sha256 into a versioned
 * directory behind a stable symlink.
 */
import type { Problems } from "../problems";
import type { CloudInitFile } from "./cloud-init";
import { shellQuote } from "./shell";
import { RELEASE_URL_PATTERN, RELEASE_URL_RULE, RELEASE_VERSION_PATTERN } from "../rules";

/**
 * The Content-Security-Policy every static site gets unless told otherwise: the app may only be
 * framed by itself (click-jacking), no plugins, no `<base>` tricks. Script/style sources are
 * left to the apps' own policies: Element and synapse-admin use workers, WASM and inline styles.
 */
export const DEFAULT_CONTENT_SECURITY_POLICY = "frame-ancestors 'self'; object-src 'none'; base-uri 'self'";

export interface StaticSiteOptions {
  /** Host name the site answers to. @default "_" (nginx's catch-all non-name) */
  readonly serverName?: string;
  /** Document root, an absolute path. */
  readonly root: string;
  /** Port nginx listens on, on IPv4 and IPv6. @default 80 */
  readonly port?: number;
  /** Make this the `default_server` for requests whose Host matches no site. @default false */
  readonly defaultServer?: boolean;
  /**
   * What a path that matches no file returns: `"404"`, or `"index"` for single-page apps that
   * route on the path (every unknown path serves `/index.html`).
   * @default "404"
   */
  readonly fallback?: "404" | "index";
  /** @default DEFAULT_CONTENT_SECURITY_POLICY */
  readonly contentSecurityPolicy?: string;
  /** @default "no-referrer" */
  readonly referrerPolicy?: string;
  /**
   * Exact paths browsers must revalidate on every load, so that a new release or a changed
   * config.json takes effect on the next page load.
   * @default ["/index.html", "/config.json"]
   */
  readonly noCachePaths?: readonly string[];
}

const SERVER_NAME = /^(_|(?!-)[a-z0-9-]{1,63}(?<!-)(\.(?!-)[a-z0-9-]{1,63}(?<!-))*)$/;
const ABSOLUTE_PATH = /^\/[A-Za-z0-9._\/-]*$/;
const URL_PATH = /^\/[A-Za-z0-9._~\/-]*$/;

/** A value nginx reads literally inside double quotes: no quote, backslash, `$` or newline. */
function nginxQuoted(value: string, what: string): string {
  if (/["\\$\n\r]/.test(value)) throw new Error(`${what} must not contain quotes, backslashes, "$" or newlines: ${JSON.stringify(value)}`);
  return `"${value}"`;
}

/**
 * nginx refuses to start when a server name does not fit a hash bucket; the default bucket is
 * one CPU cache line (64 bytes on x86-64). Returns the bucket size a long name needs, or
 * undefined when the default fits.
 */
export function serverNamesHashBucketSize(serverName: string): number | undefined {
  const align = (n: number, to: number) => Math.ceil(n / to) * to;
  // One hash element (value pointer, length, name) plus the bucket's terminating pointer.
  const needed = 8 + align(serverName.length + 2, 8) + 8;
  return needed <= 64 ? undefined : align(needed, 64);
}

export function renderStaticSite(options: StaticSiteOptions): string {
  const serverName = options.serverName ?? "_";
  const port = options.port ?? 80;
  if (!SERVER_NAME.test(serverName)) throw new Error(`serverName must be "_" or a lower-case DNS name, got ${JSON.stringify(serverName)}`);
  if (!ABSOLUTE_PATH.test(options.root)) throw new Error(`root must be an absolute path of letters, digits and ._-/, got ${JSON.stringify(options.root)}`);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`port must be an integer from 1 to 65535, got ${port}`);
  const noCache = options.noCachePaths ?? ["/index.html", "/config.json"];
  for (const path of noCache) {
    if (!URL_PATH.test(path)) throw new Error(`noCachePaths entries must be URL paths such as "/config.json", got ${JSON.stringify(path)}`);
  }
  const csp = nginxQuoted(options.contentSecurityPolicy ?? DEFAULT_CONTENT_SECURITY_POLICY, "contentSecurityPolicy");
  const referrer = nginxQuoted(options.referrerPolicy ?? "no-referrer", "referrerPolicy");
  const flags = options.defaultServer ? " default_server" : "";
  const bucket = serverNamesHashBucketSize(serverName);
  const fallback = options.fallback === "index" ? "/index.html" : "=404";

  return [
    ...(bucket ? [`server_names_hash_bucket_size ${bucket};`, ""] : []),
    "server {",
    `    listen ${port}${flags};`,
    `    listen [::]:${port}${flags};`,
    `    server_name ${serverName};`,
    "",
    `    root ${options.root};`,
    "    index index.html;",
    "    server_tokens off;",
    "",
    // `always`: the headers go on error responses too. Locations below set no add_header of
    // their own, so they inherit these (nginx drops inherited add_header otherwise).
    '    add_header X-Frame-Options "SAMEORIGIN" always;',
    '    add_header X-Content-Type-Options "nosniff" always;',
    `    add_header Referrer-Policy ${referrer} always;`,
    `    add_header Content-Security-Policy ${csp} always;`,
    "",
    "    location / {",
    `        try_files $uri $uri/ ${fallback};`,
    "    }",
    ...noCache.flatMap((path) => ["", `    location = ${path} {`, "        expires epoch;", "    }"]),
    "}",
    "",
  ].join("\n");
}

export interface PinnedDownloadOptions {
  /** Where the release tarball comes from: https, or a file:/// path inside the container (offline hosts). */
  readonly url: string;
  /** Lower-case hex SHA-256 of the tarball; nothing is unpacked unless it matches. */
  readonly sha256: string;
  /** Versioned directory the tarball is unpacked into, e.g. `/var/www/element-1.12.24`. */
  readonly destination: string;
  /** Leading path components to strip (the tarball's top-level directory). @default 1 */
  readonly stripComponents?: number;
  /** Stable symlink pointed at `destination` once it is complete, e.g. `/var/www/element`. @default none */
  readonly link?: string;
}

export const SHA256_PATTERN = /^[0-9a-f]{64}$/;


/**
 * One shell command (a runcmd item) that downloads the tarball, checks it against the pinned
 * sha256 and only then unpacks it and switches the symlink. It is a single `&&` chain because
 * cloud-init runs runcmd as a plain `sh` script that carries on after a failing line: a
 * mismatch must leave nothing unpacked and nothing linked, and make the command fail.
 */
export function renderPinnedDownload(options: PinnedDownloadOptions): string[] {
  const strip = options.stripComponents ?? 1;
  if (!SHA256_PATTERN.test(options.sha256)) throw new Error(`sha256 must be 64 lower-case hex digits, got ${JSON.stringify(options.sha256)}`);
  if (!RELEASE_URL_PATTERN.test(options.url)) throw new Error(`url must be ${RELEASE_URL_RULE}, got ${JSON.stringify(options.url)}`);
  for (const [what, path] of [["destination", options.destination], ["link", options.link]] as const) {
    if (path !== undefined && (!ABSOLUTE_PATH.test(path) || path.split("/").includes(".."))) {
      throw new Error(`${what} must be an absolute path without "..", got ${JSON.stringify(path)}`);
    }
  }
  if (!Number.isInteger(strip) || strip < 0) throw new Error(`stripComponents must be a non-negative integer, got ${strip}`);

  const url = shellQuote(options.url);
  const dest = shellQuote(options.destination);
  const staging = shellQuote(`${options.destination}.partial`);
  const steps = [
    // --proto-redir: a redirect may not downgrade to plain http.
    `curl -fsSL --retry 3 --proto-redir =https -o "$tarball" ${url}`,
    `printf '%s  %s\\n' ${options.sha256} "$tarball" | sha256sum -c --strict -`,
    `rm -rf ${staging}`,
    `mkdir -p ${staging}`,
    `tar -xf "$tarball" -C ${staging} --strip-components=${strip} --no-same-owner --no-same-permissions`,
    `rm -rf ${dest}`,
    `mv ${staging} ${dest}`,
    ...(options.link ? [`ln -sfT ${dest} ${shellQuote(options.link)}`] : []),
  ];
  const failure = `echo ${shellQuote(`pinned download failed or its sha256 is not ${options.sha256}: ${options.url}; nothing installed`)} >&2`;
  return [
    `tarball=$(mktemp) || exit 1; if ${steps.join(" && ")}; then rm -f "$tarball"; else rm -rf "$tarball" ${staging}; ${failure}; exit 1; fi`,
  ];
}

export interface PinnedReleaseProps {
  readonly version?: string;
  readonly sha256?: string;
  readonly downloadUrl?: string;
}

/** A release version: digits first, then letters, digits, dots and dashes (it ends up in paths and URLs). */
export const VERSION_PATTERN = RELEASE_VERSION_PATTERN;

/**
 * Checks a construct's `version`/`sha256`/`downloadUrl` props. A version other than the default
 * needs its own sha256 (the default one cannot match it), and a sha256 needs the version it
 * belongs to.
 */
export function validatePinnedRelease(props: PinnedReleaseProps, defaultVersion: string, problems: Problems): void {
  if (props.version !== undefined) {
    problems.check(VERSION_PATTERN.test(props.version), "version", `must be a release version such as ${JSON.stringify(defaultVersion)}, got ${JSON.stringify(props.version)}`);
  }
  if (props.sha256 !== undefined) {
    problems.check(SHA256_PATTERN.test(props.sha256), "sha256", `must be the release tarball's SHA-256 as 64 lower-case hex digits, got ${JSON.stringify(props.sha256)}`);
  }
  if (props.version !== undefined && props.version !== defaultVersion && props.sha256 === undefined) {
    problems.add("sha256", `is required with version ${JSON.stringify(props.version)}: give the SHA-256 of that release's tarball (the default pin is for ${defaultVersion})`);
  }
  if (props.sha256 !== undefined && props.version === undefined) {
    problems.add("version", "is required with sha256: pin the version the checksum belongs to");
  }
  if (props.downloadUrl !== undefined) {
    problems.check(RELEASE_URL_PATTERN.test(props.downloadUrl), "downloadUrl", `must be ${RELEASE_URL_RULE} (the release tarball), got ${JSON.stringify(props.downloadUrl)}`);
  }
}

export interface StaticAppOptions {
  /** Short name: the bundle is served from `/var/www/<app>`, releases live in `/var/www/<app>-<version>`, files are staged in `/etc/<app>`. */
  readonly app: string;
  readonly release: { readonly version: string; readonly sha256: string; readonly url: string; readonly stripComponents?: number };
  /** nginx site file name under /etc/nginx/sites-available. */
  readonly siteName: string;
  readonly site: Omit<StaticSiteOptions, "root">;
  /** Files placed in the bundle after it is installed (e.g. `config.json`), by file name. */
  readonly bundleFiles: Readonly<Record<string, string>>;
}

export interface StaticAppProvisioning {
  readonly webRoot: string;
  /** For a stock image. */
  readonly packages: string[];
  /** For a stock image: the pinned download. */
  readonly stockImageCommands: string[];
  readonly files: CloudInitFile[];
  readonly commands: string[];
}

/**
 * Everything a container needs to serve a pinned release of a static web app with nginx, as
 * ServiceContainer props. Bundle files are staged in /etc/<app> and copied in after the
 * download, because cloud-init writes files before it runs commands (a file written into
 * /var/www/<app> first would turn the symlink's path into a plain directory).
 */
export function staticAppProvisioning(options: StaticAppOptions): StaticAppProvisioning {
  const { app, release } = options;
  if (!/^[a-z][a-z0-9-]*$/.test(app)) throw new Error(`app must be lower-case letters, digits and dashes, got ${JSON.stringify(app)}`);
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(options.siteName)) throw new Error(`siteName must be a file name, got ${JSON.stringify(options.siteName)}`);
  if (!VERSION_PATTERN.test(release.version)) throw new Error(`release.version must match ${VERSION_PATTERN}, got ${JSON.stringify(release.version)}`);
  const webRoot = `/var/www/${app}`;
  const staged = Object.entries(options.bundleFiles).map(([name, content]) => {
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name)) throw new Error(`bundleFiles keys must be file names, got ${JSON.stringify(name)}`);
    return { name, path: `/etc/${app}/${name}`, content };
  });
  const available = `/etc/nginx/sites-available/${options.siteName}`;
  return {
    webRoot,
    packages: ["nginx", "curl", "ca-certificates"],
    stockImageCommands: renderPinnedDownload({
      url: release.url,
      sha256: release.sha256,
      destination: `${webRoot}-${release.version}`,
      stripComponents: release.stripComponents,
      link: webRoot,
    }),
    files: [
      { path: available, content: renderStaticSite({ ...options.site, root: webRoot }) },
      ...staged.map((f) => ({ path: f.path, content: f.content })),
    ],
    commands: [
      "rm -f /etc/nginx/sites-enabled/default",
      `ln -sfT ${available} /etc/nginx/sites-enabled/${options.siteName}`,
      ...staged.map((f) => `install -m 0644 ${f.path} ${webRoot}/${f.name}`),
      "systemctl enable nginx",
      "systemctl restart nginx",
    ],
  };
}
