/**
 * Every container of the example stack: booted from its pre-built image with its rendered
 * user-data, cloud-init finished without errors, the firewall is loaded and drops what the
 * container does not offer.
 */
import { deployment } from "./support/deployment";
import { inContainer, run } from "./support/lxd";

const d = deployment();
const names = d.state.plan.instances.map((i) => i.name);

describe.each(names)("container %s", (name) => {
  test("cloud-init finished without errors (status done)", () => {
    const r = inContainer(name, ["cloud-init", "status", "--long"]);
    expect(r.stdout).toMatch(/^status: done$/m);
    expect(r.stdout).toMatch(/DataSourceNoCloud/);
  });

  test("no failed systemd units, except certbot-issue (no route to Let's Encrypt here)", () => {
    const r = inContainer(name, ["systemctl", "list-units", "--failed", "--plain", "--no-legend"]);
    const failed = r.stdout
      .split("\n")
      .map((l) => l.split(" ")[0])
      .filter((u) => u && u !== "certbot-issue.service");
    expect(failed).toEqual([]);
  });

  test("the nftables ruleset is loaded with a default-drop input chain", () => {
    const r = inContainer(name, ["nft", "list", "chain", "inet", "filter", "input"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/hook input priority filter; policy drop;/);
  });

  test("a port the container does not offer is dropped (no answer, not refused)", () => {
    const inst = d.state.plan.instances.find((i) => i.name === name)!;
    const ip = inst.devices.find((dev) => dev.name === "eth0")!.properties["ipv4.address"];
    // A listener inside proves the port is reachable but for the firewall.
    inContainer(name, ["sh", "-c", "command -v python3 >/dev/null && (setsid python3 -m http.server 9931 --bind 0.0.0.0 >/dev/null 2>&1 &) ; true"]);
    const r = run("curl", ["-s", "-o", "/dev/null", "-m", "3", `http://${ip}:9931/`]);
    expect(r.code).toBe(28); // timed out: dropped (7 would be refused)
    inContainer(name, ["sh", "-c", "pkill -f 'http.server 9931' || true"]);
  });
});

test("the image template falls back to user.user-data (the key provider 1.x reads back)", () => {
  const r = inContainer(d.client, ["cat", "/etc/lxd-suite-user-data"]);
  expect(r.stdout.trim()).toBe("from user.user-data");
});
