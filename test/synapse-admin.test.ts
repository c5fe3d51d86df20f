import { parse } from "yaml";
import { SynapseAdmin, SynapseAdminProps, SYNAPSE_ADMIN_RELEASE, isCidr, synapseAdminDownloadUrl } from "../constructs/matrix/synapse-admin";
import { hostStack, synthJson } from "./support/fixtures";
import { checkCloudInit, checkNftables, checkNginxSite } from "./support/validators";

const OTHER_SHA = "2".repeat(64);

function deploy(props: Partial<SynapseAdminProps> = {}) {
  const { stack, host } = hostStack();
  const admin = new SynapseAdmin(stack, "synapse-admin", { host, projectId: "chat", homeserverUrl: "http://10.10.1.20:8008", ...props });
  return { admin, json: synthJson(stack) };
}

const userDataOf = (admin: SynapseAdmin) => parse(admin.container.userData);
const fileAt = (doc: any, p: string): string | undefined => doc.write_files.find((f: any) => f.path === p)?.content;
/** The lines of the input chain that accept something on a port. */
const acceptRules = (nft: string) => nft.split("\n").map((l) => l.trim()).filter((l) => /dport .* accept/.test(l) && !l.includes("DHCPv6"));

describe("SynapseAdmin", () => {
  test("config.json locks the UI to the project's homeserver", () => {
    const { admin } = deploy({ homeserverUrl: "http://10.10.1.20:8008/" });
    const doc = userDataOf(admin);
    expect(JSON.parse(fileAt(doc, "/etc/synapse-admin/config.json")!)).toEqual({ restrictBaseUrl: "http://10.10.1.20:8008" });
    expect(doc.runcmd).toContain("install -m 0644 /etc/synapse-admin/config.json /var/www/synapse-admin/config.json");
    const download = doc.runcmd.findIndex((c: string) => c.includes("sha256sum -c"));
    expect(doc.runcmd.indexOf("install -m 0644 /etc/synapse-admin/config.json /var/www/synapse-admin/config.json")).toBeGreaterThan(download);
  });

  test("its firewall admits port 80 only from the admin networks", () => {
    const { admin } = deploy({ adminNetworks: ["192.168.50.0/24", "fd00:50::/64"] });
    const nft = fileAt(userDataOf(admin), "/etc/nftables.conf")!;
    expect(acceptRules(nft)).toEqual([
      'ip saddr { 192.168.50.0/24 } tcp dport { 80 } accept comment "synapse-admin UI from the admin networks only"',
      'ip6 saddr { fd00:50::/64 } tcp dport { 80 } accept comment "synapse-admin UI from the admin networks only"',
    ]);
    expect(nft).not.toContain("10.10.1.0/24");
    expect(nft).toContain("policy drop;");
    checkNftables(nft);
  });

  test("admin networks default to the host's own address, not the whole container network", () => {
    const { admin } = deploy();
    expect(admin.adminNetworks).toEqual(["10.10.1.1/32", "fd10:10:10:1::1:1/128"]);
    const nft = fileAt(userDataOf(admin), "/etc/nftables.conf")!;
    expect(acceptRules(nft)).toEqual([
      expect.stringMatching(/^ip saddr \{ 10\.10\.1\.1\/32 \} tcp dport \{ 80 \} accept/),
      expect.stringMatching(/^ip6 saddr \{ fd10:10:10:1::1:1\/128 \} tcp dport \{ 80 \} accept/),
    ]);
    checkNftables(nft);
  });

  test("is never published through the ingress proxy: no route, no backend, no key under service/haproxy", () => {
    const { json } = deploy();
    expect(JSON.stringify(json)).not.toContain("service/haproxy");
    expect(json.resource.consul_keys).toBeUndefined();
    const devices = (Object.values(json.resource.lxd_instance)[0] as any).device;
    expect(devices.filter((d: any) => d.type === "proxy")).toEqual([]);
  });

  test("is registered in Consul for the admin's browser", () => {
    const { admin, json } = deploy();
    expect(admin.name).toBe("chat-synapse-admin");
    expect(admin.url).toBe("http://10.10.1.22/");
    expect(Object.values(json.resource.consul_service)).toEqual([expect.objectContaining({ name: "chat-synapse-admin", port: 80, address: "10.10.1.22" })]);
  });

  test("user-data and the nginx site pass the real validators", () => {
    const { admin } = deploy();
    const doc = userDataOf(admin);
    checkCloudInit(admin.container.userData);
    const site = fileAt(doc, "/etc/nginx/sites-available/synapse-admin")!;
    expect(site).toContain("listen 80 default_server;");
    expect(site).toContain("root /var/www/synapse-admin;");
    expect(site).toContain("try_files $uri $uri/ /index.html;");
    checkNginxSite(site);
  });

  test("downloads the pinned default release on the stock image, nothing on a pre-built one", () => {
    const stock = userDataOf(deploy().admin);
    const download = stock.runcmd.find((c: string) => c.includes("sha256sum -c"));
    expect(download).toContain(SYNAPSE_ADMIN_RELEASE.sha256);
    expect(download).toContain(`'${synapseAdminDownloadUrl(SYNAPSE_ADMIN_RELEASE.version)}'`);
    expect(download).toContain(`'/var/www/synapse-admin-${SYNAPSE_ADMIN_RELEASE.version}'`);
    expect(synapseAdminDownloadUrl("0.10.3")).toBe("https://github.com/Awesome-Technologies/synapse-admin/releases/download/0.10.3/synapse-admin-0.10.3.tar.gz");
    const { admin, json } = deploy({ image: "local:synapse-admin" });
    const prebuilt = userDataOf(admin);
    expect(prebuilt.runcmd.join("\n")).not.toMatch(/curl|sha256sum/);
    expect(fileAt(prebuilt, "/etc/synapse-admin/config.json")).toBeDefined();
    expect((Object.values(json.resource.lxd_instance)[0] as any).image).toBe("local:synapse-admin");
    checkCloudInit(admin.container.userData);
  });

  test("changing the version replaces the container and nothing else", () => {
    const before = deploy().json;
    const after = deploy({ version: "0.11.1", sha256: OTHER_SHA }).json;
    const [dataId] = Object.keys(after.resource.terraform_data);
    const instance = (json: any) => Object.values(json.resource.lxd_instance)[0] as any;
    expect(instance(after).lifecycle.replace_triggered_by).toEqual([`terraform_data.${dataId}`]);
    expect((Object.values(after.resource.terraform_data)[0] as any).triggers_replace.user_data).toContain(OTHER_SHA);
    expect(before.resource.terraform_data).not.toEqual(after.resource.terraform_data);
    const { lxd_instance: _a, terraform_data: _b, ...othersBefore } = before.resource;
    const { lxd_instance: _c, terraform_data: _d, ...othersAfter } = after.resource;
    expect(othersAfter).toEqual(othersBefore);
  });

  test("reports every bad prop at once, naming each", () => {
    let message = "";
    try {
      deploy({ homeserverUrl: "matrix.example.com", adminNetworks: ["10.0.0.0/33", "fd00::/64"], sha256: "XYZ", version: "0.11.1" });
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message).toMatch(/invalid SynapseAdmin props/);
    expect(message).toMatch(/- homeserverUrl: must be Synapse's base URL/);
    expect(message).toMatch(/- adminNetworks\[0\]: must be an IPv4 or IPv6 CIDR/);
    expect(message).not.toMatch(/adminNetworks\[1\]/);
    expect(message).toMatch(/- sha256: must be the release tarball's SHA-256/);
    expect(() => deploy({ adminNetworks: [] })).toThrow(/adminNetworks: must list at least one network/);
    expect(() => deploy({ version: "0.11.1" })).toThrow(/sha256: is required with version "0\.11\.1"/);
  });

  test("isCidr accepts addresses and prefixes of both families and nothing else", () => {
    for (const ok of ["10.0.0.0/8", "10.10.1.5", "fd00::/8", "2001:db8::1", "0.0.0.0/0"]) expect(isCidr(ok)).toBe(true);
    for (const bad of ["10.0.0.0/33", "fd00::/129", "10.0.0/24", "example.com", "10.0.0.0/8/1", "10.0.0.0/"]) expect(isCidr(bad)).toBe(false);
  });
});
