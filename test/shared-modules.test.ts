import { Testing } from "cdktf";
import { SharedModules } from "../constructs/modules/shared-modules";
import { Instance } from "../gen/providers/lxd/instance";
import { Keys } from "../gen/providers/consul/keys";
import { hostStack } from "./support/fixtures";

function modulesStack() {
  const { stack, host } = hostStack();
  const modules = new SharedModules(stack, "modules", { host, coturn: { domain: "turn.example.com", adminEmail: "admin@example.com" } });
  return { stack, host, modules, synthesized: Testing.synth(stack) };
}

describe("SharedModules", () => {
  const { synthesized, modules } = modulesStack();

  test("matches the snapshot of a stack deploying all four modules", () => {
    expect(JSON.parse(synthesized)).toMatchSnapshot();
  });

  test("deploys each module at its static address", () => {
    for (const [name, ip] of [
      ["ingress-proxy", "10.10.1.10"],
      ["postgres", "10.10.1.13"],
      ["coturn", "10.10.1.15"],
      ["wellknown", "10.10.1.16"],
    ]) {
      expect(synthesized).toHaveResourceWithProperties(Instance, {
        name,
        device: expect.arrayContaining([expect.objectContaining({ name: "eth0", properties: expect.objectContaining({ "ipv4.address": ip }) })]),
      });
    }
  });

  test("writes coturn's ports and TURN domain to Consul KV, with the domain's certificate", () => {
    const paths = Object.values<any>(JSON.parse(synthesized).resource.consul_keys).flatMap((r) => r.key.map((k: any) => [k.path, k.value]));
    expect(Object.fromEntries(paths)).toMatchObject({
      "service/coturn/listening-port": "3478",
      "service/coturn/tls-listening-port": "5349",
      "service/coturn/min-port": "50000",
      "service/coturn/max-port": "51000",
      "service/coturn/coturn-domain": "turn.example.com",
      "service/certbot/turn.example.com": "admin@example.com",
    });
    expect(synthesized).toHaveResourceWithProperties(Keys, { key: expect.arrayContaining([expect.objectContaining({ path: "service/coturn/coturn-domain", delete: true })]) });
  });

  test("coturn mounts the ingress proxy's shared certificate volume read-only", () => {
    const coturn = Object.values<any>(JSON.parse(synthesized).resource.lxd_instance).find((i) => i.name === "coturn");
    const attached = coturn.device.find((d: any) => d.name === "attached-shared-certs");
    // A reference to the volume resource: Terraform creates the volume before coturn attaches it.
    expect(attached.properties.source).toMatch(/^\$\{lxd_storage_volume\.modules_ingress-proxy_container_volume-shared-certs_\w+\.name\}$/);
    expect(attached.properties).toMatchObject({ readonly: "true", path: "/var/certs" });
    expect(modules.ingress.sharedCertsVolume).toBeDefined();
  });

  test("exposes the TURN secret as a reference, never a literal", () => {
    expect(modules.turn.sharedSecret).toMatch(/\$\{TfToken\[/);
    const json = JSON.parse(synthesized);
    expect(Object.keys(json.resource.random_password)).toHaveLength(1);
    expect(synthesized).not.toMatch(/static-auth-secret=[A-Za-z0-9]{16,}/);
  });

  test("a TURN domain without an admin e-mail is refused", () => {
    const { stack, host } = hostStack();
    expect(() => new SharedModules(stack, "m", { host, coturn: { domain: "turn.example.com" } })).toThrow(/coturn\.adminEmail is required/);
  });
});
