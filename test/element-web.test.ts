import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { parse } from "yaml";
import { ElementWeb, ElementWebProps, ELEMENT_RELEASE, elementDownloadUrl } from "../constructs/matrix/element-web";
import { elementConfig, renderElementConfig, ISO_3166_ALPHA2 } from "../lib/render/element";
import { renderPinnedDownload, renderStaticSite, serverNamesHashBucketSize } from "../lib/render/static-site";
import { hostStack, kvEntries, synthJson } from "./support/fixtures";
import { checkCloudInit, checkNftables, checkNginxSite } from "./support/validators";

const OTHER_SHA = "1".repeat(64);

function deploy(props: Partial<ElementWebProps> = {}) {
  const { stack, host } = hostStack();
  const element = new ElementWeb(stack, "element", { host, projectId: "chat", domain: "example.com", ...props });
  return { element, json: synthJson(stack) };
}

const userDataOf = (element: ElementWeb) => parse(element.container.userData);
const fileAt = (doc: any, p: string): string | undefined => doc.write_files.find((f: any) => f.path === p)?.content;

describe("renderStaticSite", () => {
  test("serves the root with security headers on every response, and passes nginx -t", () => {
    const site = renderStaticSite({ serverName: "element.example.com", root: "/var/www/element" });
    expect(site).toContain("    listen 80;\n    listen [::]:80;\n    server_name element.example.com;");
    expect(site).toContain("root /var/www/element;");
    expect(site).toContain("try_files $uri $uri/ =404;");
    expect(site).toContain('add_header X-Frame-Options "SAMEORIGIN" always;');
    expect(site).toContain('add_header X-Content-Type-Options "nosniff" always;');
    expect(site).toContain('add_header Referrer-Policy "no-referrer" always;');
    expect(site).toMatch(/add_header Content-Security-Policy "[^"]*frame-ancestors 'self'[^"]*" always;/);
    expect(site).toContain("location = /config.json {\n        expires epoch;");
    // Locations must not set add_header of their own, or nginx drops the inherited security headers.
    expect(site.match(/add_header/g)).toHaveLength(4);
    checkNginxSite(site);
  });

  test("a catch-all single-page app falls back to index.html", () => {
    const site = renderStaticSite({ root: "/var/www/app", defaultServer: true, fallback: "index" });
    expect(site).toContain("listen 80 default_server;\n    listen [::]:80 default_server;\n    server_name _;");
    expect(site).toContain("try_files $uri $uri/ /index.html;");
    checkNginxSite(site);
  });

  test("a server name too long for nginx's default hash bucket gets a bigger bucket", () => {
    const long = `element.${"a".repeat(60)}.${"b".repeat(40)}.example.com`;
    const site = renderStaticSite({ serverName: long, root: "/var/www/element" });
    expect(serverNamesHashBucketSize(long)).toBe(192);
    // nginx builds the names hash only when several servers share the port, as with Debian's default site.
    const catchAll = "server {\n    listen 80 default_server;\n    server_name _;\n}\n";
    checkNginxSite(site + catchAll);
    // Proof that the directive is what makes it work.
    expect(() => checkNginxSite(site.replace(/^server_names_hash_bucket_size .*$/m, "") + catchAll)).toThrow(/server_names_hash_bucket_size/);
    expect(serverNamesHashBucketSize("element.example.com")).toBeUndefined();
  });

  test("refuses values that would break out of nginx syntax", () => {
    expect(() => renderStaticSite({ root: "/var/www/x; evil" })).toThrow(/root/);
    expect(() => renderStaticSite({ root: "/var/www/x", contentSecurityPolicy: 'a" always; add_header X "y' })).toThrow(/contentSecurityPolicy/);
    expect(() => renderStaticSite({ root: "/var/www/x", serverName: "Element.Example.com" })).toThrow(/serverName/);
  });
});

describe("renderPinnedDownload", () => {
  let work: string;
  let tarball: string;
  let sha256: string;

  beforeAll(() => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), "pinned-download-"));
    const src = path.join(work, "src");
    fs.mkdirSync(path.join(src, "element-v9.9.9", "i18n"), { recursive: true });
    fs.writeFileSync(path.join(src, "element-v9.9.9", "index.html"), "<html>element</html>\n");
    fs.writeFileSync(path.join(src, "element-v9.9.9", "i18n", "en.json"), "{}\n");
    tarball = path.join(work, "element-v9.9.9.tar.gz");
    const tar = spawnSync("tar", ["-czf", tarball, "-C", src, "element-v9.9.9"], { encoding: "utf8" });
    expect(tar.status).toBe(0);
    sha256 = createHash("sha256").update(fs.readFileSync(tarball)).digest("hex");
  });
  afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

  /** Runs the commands as cloud-init's runcmd script does: plain sh, no -e. */
  function run(sha: string, root: string) {
    const tmp = path.join(root, "tmp");
    fs.mkdirSync(tmp, { recursive: true });
    const commands = renderPinnedDownload({
      url: `file://${tarball}`,
      sha256: sha,
      destination: path.join(root, "www", "element-9.9.9"),
      link: path.join(root, "www", "element"),
      stripComponents: 1,
    });
    fs.mkdirSync(path.join(root, "www"), { recursive: true });
    const result = spawnSync("sh", ["-c", commands.join("\n")], { encoding: "utf8", env: { ...process.env, TMPDIR: tmp } });
    return { ...result, commands, leftovers: fs.readdirSync(tmp) };
  }

  test("installs the release into a versioned directory behind the symlink when the sha256 matches", () => {
    const root = fs.mkdtempSync(path.join(work, "ok-"));
    const r = run(sha256, root);
    expect(r.commands.join("\n")).toContain(sha256);
    expect(r.commands.join("\n")).toContain("sha256sum -c");
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(fs.readFileSync(path.join(root, "www", "element", "index.html"), "utf8")).toBe("<html>element</html>\n");
    expect(fs.readlinkSync(path.join(root, "www", "element"))).toBe(path.join(root, "www", "element-9.9.9"));
    expect(fs.existsSync(path.join(root, "www", "element-9.9.9", "i18n", "en.json"))).toBe(true);
    expect(fs.readdirSync(path.join(root, "www")).sort()).toEqual(["element", "element-9.9.9"]);
    expect(r.leftovers).toEqual([]);
  });

  test("a wrong sha256 fails the command, unpacks nothing and leaves the current release linked", () => {
    const root = fs.mkdtempSync(path.join(work, "bad-"));
    fs.mkdirSync(path.join(root, "www", "element-1.0.0"), { recursive: true });
    fs.symlinkSync(path.join(root, "www", "element-1.0.0"), path.join(root, "www", "element"));
    const r = run(OTHER_SHA, root);
    expect(r.status).not.toBe(0);
    expect(r.stdout).toMatch(/FAILED/);
    expect(r.stderr).toMatch(/nothing installed/);
    expect(fs.readdirSync(path.join(root, "www")).sort()).toEqual(["element", "element-1.0.0"]);
    expect(fs.readlinkSync(path.join(root, "www", "element"))).toBe(path.join(root, "www", "element-1.0.0"));
    expect(r.leftovers).toEqual([]);
  });

  test("refuses a malformed checksum or a plain-http URL", () => {
    const base = { url: "https://example.com/a.tar.gz", sha256, destination: "/var/www/a-1" };
    expect(() => renderPinnedDownload({ ...base, sha256: sha256.toUpperCase() })).toThrow(/sha256/);
    expect(() => renderPinnedDownload({ ...base, url: "http://example.com/a.tar.gz" })).toThrow(/url/);
    expect(() => renderPinnedDownload({ ...base, destination: "/var/www/../etc" })).toThrow(/destination/);
  });
});

describe("renderElementConfig", () => {
  const options = {
    domain: "example.com",
    footerLinks: [{ text: "Privacy", url: "https://example.com/privacy" }],
    countryCode: "DE",
  };

  test("locks Element to the project's homeserver with guests, custom servers and 3PID login off", () => {
    const config = JSON.parse(renderElementConfig(options));
    expect(config.default_server_config).toEqual({ "m.homeserver": { base_url: "https://matrix.example.com", server_name: "example.com" } });
    expect(config.disable_custom_urls).toBe(true);
    expect(config.disable_guests).toBe(true);
    expect(config.disable_3pid_login).toBe(true);
    expect(config.show_labs_settings).toBe(false);
    expect(config.default_federate).toBe(false);
    expect(config.brand).toBe("example.com");
    expect(config.branding.auth_footer_links).toEqual([{ text: "Privacy", url: "https://example.com/privacy" }]);
    expect(config.default_country_code).toBe("DE");
    expect(config.room_directory).toEqual({ servers: ["example.com"] });
    expect(config.setting_defaults).toMatchObject({
      "UIFeature.registration": false,
      "UIFeature.passwordReset": false,
      "UIFeature.deactivate": false,
    });
  });

  test("talks to no third party by default: integrations off, no bug reports, no analytics", () => {
    const config = elementConfig({ domain: "example.com" });
    expect(config.integrations_ui_url).toBe("");
    expect(config.integrations_rest_url).toBe("");
    expect(config.integrations_widgets_urls).toEqual([]);
    for (const key of ["bug_report_endpoint_url", "posthog", "piwik", "sentry", "map_style_url"]) expect(config).not.toHaveProperty(key);
    const urls = JSON.stringify(config).match(/https?:\/\/[^"]+/g) ?? [];
    expect(urls).toEqual(["https://matrix.example.com"]);
  });

  test("integrations, bug reports and settings can be turned on explicitly", () => {
    const config = elementConfig({
      domain: "example.com",
      integrations: { uiUrl: "https://scalar.vector.im/", restUrl: "https://scalar.vector.im/api" },
      bugReportEndpointUrl: "https://rageshake.example.com/submit",
      settingDefaults: { "UIFeature.passwordReset": true },
      defaultFederate: true,
    });
    expect(config.integrations_ui_url).toBe("https://scalar.vector.im/");
    expect(config.integrations_widgets_urls).toEqual(["https://scalar.vector.im/api"]);
    expect(config.bug_report_endpoint_url).toBe("https://rageshake.example.com/submit");
    expect((config.setting_defaults as any)["UIFeature.passwordReset"]).toBe(true);
    expect((config.setting_defaults as any)["UIFeature.registration"]).toBe(false);
    expect(config.default_federate).toBe(true);
  });

  test("refuses a country code that is not an upper-case ISO 3166-1 alpha-2 code, and non-https footer links", () => {
    for (const countryCode of ["gb", "GBR", "XX", "UK"]) {
      expect(() => renderElementConfig({ ...options, countryCode })).toThrow(/countryCode: must be an ISO 3166-1 alpha-2 country code/);
    }
    expect(() => renderElementConfig({ ...options, footerLinks: [{ text: "Imprint", url: "http://example.com/imprint" }] })).toThrow(
      /footerLinks\[0\]\.url: must be an https URL/,
    );
  });

  test("the country list holds exactly the 249 assigned codes, each known by name", () => {
    expect(ISO_3166_ALPHA2.size).toBe(249);
    const names = new Intl.DisplayNames(["en"], { type: "region" });
    for (const code of ISO_3166_ALPHA2) expect(names.of(code)).not.toBe(code);
  });
});

describe("ElementWeb", () => {
  test("writes config.json and config.element.<domain>.json into the served bundle", () => {
    const { element } = deploy({ footerLinks: [{ text: "Imprint", url: "https://example.com/imprint" }], countryCode: "FR", brand: "Example Chat" });
    const doc = userDataOf(element);
    const config = JSON.parse(fileAt(doc, "/etc/element/config.json")!);
    expect(config.default_server_config["m.homeserver"]).toEqual({ base_url: "https://matrix.example.com", server_name: "example.com" });
    expect(config.disable_guests).toBe(true);
    expect(config.disable_custom_urls).toBe(true);
    expect(config.branding.auth_footer_links).toEqual([{ text: "Imprint", url: "https://example.com/imprint" }]);
    expect(config.default_country_code).toBe("FR");
    expect(config.brand).toBe("Example Chat");
    expect(fileAt(doc, "/etc/element/config.element.example.com.json")).toBe(fileAt(doc, "/etc/element/config.json"));
    // Installed after the download, so the bundle symlink is in place first.
    const download = doc.runcmd.findIndex((c: string) => c.includes("sha256sum -c"));
    const installs = doc.runcmd.filter((c: string) => c.startsWith("install "));
    expect(installs).toEqual([
      "install -m 0644 /etc/element/config.json /var/www/element/config.json",
      "install -m 0644 /etc/element/config.element.example.com.json /var/www/element/config.element.example.com.json",
    ]);
    expect(doc.runcmd.indexOf(installs[0])).toBeGreaterThan(download);
  });

  test("downloads the pinned default release on the stock image", () => {
    const { element, json } = deploy();
    const doc = userDataOf(element);
    expect(doc.packages).toEqual(expect.arrayContaining(["nginx", "curl"]));
    const download = doc.runcmd.find((c: string) => c.includes("sha256sum -c"));
    expect(download).toContain(ELEMENT_RELEASE.sha256);
    expect(download).toContain(`'${elementDownloadUrl(ELEMENT_RELEASE.version)}'`);
    expect(download).toContain(`'/var/www/element-${ELEMENT_RELEASE.version}'`);
    expect(elementDownloadUrl("1.12.24")).toBe("https://github.com/element-hq/element-web/releases/download/v1.12.24/element-v1.12.24.tar.gz");
    expect(Object.values(json.resource.lxd_instance)).toEqual([expect.objectContaining({ name: "chat-element", image: "images:debian/12/cloud" })]);
  });

  test("a pre-built image downloads nothing but still gets its config.json and site", () => {
    const { element, json } = deploy({ image: "local:element" });
    const doc = userDataOf(element);
    expect(doc.packages).toBeUndefined();
    expect(doc.runcmd.join("\n")).not.toMatch(/curl|sha256sum/);
    expect(doc.runcmd).toContain("install -m 0644 /etc/element/config.json /var/www/element/config.json");
    expect(fileAt(doc, "/etc/nginx/sites-available/element.example.com")).toBeDefined();
    expect((Object.values(json.resource.lxd_instance)[0] as any).image).toBe("local:element");
    checkCloudInit(element.container.userData);
  });

  test("user-data, nginx site and firewall pass the real validators", () => {
    const { element } = deploy();
    const doc = userDataOf(element);
    checkCloudInit(element.container.userData);
    const site = fileAt(doc, "/etc/nginx/sites-available/element.example.com")!;
    expect(site).toContain("server_name element.example.com;");
    expect(site).toContain("root /var/www/element;");
    expect(site).toContain("location = /config.element.example.com.json {");
    checkNginxSite(site);
    expect(doc.runcmd).toContain("ln -sfT /etc/nginx/sites-available/element.example.com /etc/nginx/sites-enabled/element.example.com");
    const nft = fileAt(doc, "/etc/nftables.conf")!;
    expect(nft).toContain("ip saddr { 10.10.1.0/24 } tcp dport { 80 } accept");
    expect(nft).toContain("ip6 saddr { fd10:10:10:1::1:0/112 } tcp dport { 80 } accept");
    checkNftables(nft);
  });

  test("is registered in Consul and routed by the ingress proxy for element.<domain>", () => {
    const { element, json } = deploy();
    expect(element.name).toBe("chat-element");
    expect(element.url).toBe("https://element.example.com");
    expect(Object.values(json.resource.consul_service)).toEqual([expect.objectContaining({ name: "chat-element", port: 80, address: "10.10.1.21" })]);
    expect(kvEntries(json)).toEqual({
      "service/haproxy/backends/no-ssl/chat-element": "",
      "service/haproxy/acl/chat-element-host/host": "element.example.com",
      "service/haproxy/use-backend/chat-element-host": "chat-element",
    });
  });

  test("takes an explicit name instead of the project prefix", () => {
    const { element } = deploy({ projectId: undefined, name: "web-client", hostPart: 40 });
    expect(element.name).toBe("web-client");
    expect(element.container.address.ipv4).toBe("10.10.1.40");
  });

  test("changing the version replaces the container and nothing else", () => {
    const before = deploy().json;
    const after = deploy({ version: "1.12.25", sha256: OTHER_SHA }).json;
    const trigger = (json: any) => Object.values(json.resource.terraform_data)[0] as any;
    const instance = (json: any) => Object.values(json.resource.lxd_instance)[0] as any;
    const [dataId] = Object.keys(before.resource.terraform_data);
    expect(instance(before).lifecycle.replace_triggered_by).toEqual([`terraform_data.${dataId}`]);
    expect(trigger(before).triggers_replace.user_data).toContain(ELEMENT_RELEASE.sha256);
    expect(trigger(after).triggers_replace.user_data).toContain(OTHER_SHA);
    expect(instance(after).config["cloud-init.user-data"]).toContain(OTHER_SHA);
    expect(instance(after).config["cloud-init.user-data"]).toContain("/v1.12.25/element-v1.12.25.tar.gz");
    const { lxd_instance: _a, terraform_data: _b, ...othersBefore } = before.resource;
    const { lxd_instance: _c, terraform_data: _d, ...othersAfter } = after.resource;
    expect(othersAfter).toEqual(othersBefore);
    expect(instance(after).name).toBe(instance(before).name);
  });

  test("a config change replaces the container too (cloud-init would not apply it in place)", () => {
    const trigger = (json: any) => (Object.values(json.resource.terraform_data)[0] as any).triggers_replace.user_data;
    expect(trigger(deploy({ countryCode: "DE" }).json)).not.toBe(trigger(deploy({ countryCode: "FR" }).json));
    expect(trigger(deploy().json)).toBe(trigger(deploy().json));
  });

  test("reports every bad prop at once, naming each", () => {
    let message = "";
    try {
      deploy({ countryCode: "de", footerLinks: [{ text: "Home", url: "http://example.com" }], sha256: "abc", version: "1.12.25" });
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message).toMatch(/invalid ElementWeb props/);
    expect(message).toMatch(/- countryCode: must be an ISO 3166-1 alpha-2/);
    expect(message).toMatch(/- footerLinks\[0\]\.url: must be an https URL/);
    expect(message).toMatch(/- sha256: must be the release tarball's SHA-256 as 64 lower-case hex digits/);
  });

  test("a version other than the default needs its own sha256", () => {
    expect(() => deploy({ version: "1.12.25" })).toThrow(/sha256: is required with version "1\.12\.25"/);
    expect(() => deploy({ sha256: OTHER_SHA })).toThrow(/version: is required with sha256/);
    expect(() => deploy({ version: "1.12.25; rm -rf /", sha256: OTHER_SHA })).toThrow(/version: must be a release version/);
    expect(() => deploy({ downloadUrl: "http://mirror.example.com/element.tar.gz" })).toThrow(/downloadUrl: must be an https:\/\/ URL, or a file:\/\/\/ path/);
    expect(() => deploy({ domain: "Example.com" })).toThrow(/domain: must be a lower-case DNS name/);
  });
});
