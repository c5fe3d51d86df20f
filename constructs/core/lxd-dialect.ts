/**
 * The one place that knows which major of the `terraform-lxd/lxd` provider a stack is written
 * for (`host.lxd.provider`). Everything LXD — the provider block, containers, storage volumes
 * and devices added from outside a container — is emitted here, from the same description for
 * both majors; ServiceContainer, HostProviders and IngressTcpListener call it, and no module or
 * Matrix construct knows the difference.
 *
 * | | provider 3.x (default) | provider 1.x (rollyourown's API) |
 * | --- | --- | --- |
 * | resources | `lxd_instance`, `lxd_storage_volume`, `lxd_instance_device` | `lxd_container`, `lxd_volume` |
 * | provider | `remote` blocks, `default_remote`, an `images` simplestreams remote | one `lxd_remote` (unix socket path or https host/port, `default = true`); `images:` from the lxc client configuration; `refresh_interval = "1s"` |
 * | user-data | `config["cloud-init.user-data"]` | `config["user.user-data"]` (1.x drops other config keys on read, so they would drift forever) |
 * | limits | `config["limits.<key>"]` | the `limits` map |
 * | waiting | `wait_for { type = "ipv4", nic = "eth0" }`, create timeout 15 min (covers the image download) | `wait_for_network = true` (IPv4 only) |
 * | replacement trigger | image, user-data and the device set (3.x leaves a removed device block on the container) | image and user-data (1.x removes dropped devices itself) |
 * | devices added from outside the container (TCP listeners) | `lxd_instance_device`, chained per container (parallel ones race with HTTP 412) | joined to the container's own device set when it is in the same stack; refused from another stack (no `lxd_instance_device` in 1.x) |
 * | project | set on every resource | omitted (only "default"; with it set 1.x fails to launch local images) |
 * | first connection | parallel | every LXD resource of a stack waits for the stack's first one (1.9.1 connects lazily; containers created in parallel before it has connected race for the client and fail with "The source server isn't listening on the network") |
 * | a container's own secret files | `lxd_instance_file`, pushed once the instance runs, again into a replaced one | `file` blocks of `lxd_container`, uploaded before it first starts (1.9.1 deletes an `lxd_container_file` only when its remote is in the lxc client's list, which the provider's own remotes are not until it has connected: replacing such a file failed in a real deploy) |
 * | files pushed into another stack's container (database passwords) | `lxd_instance_file` | `lxd_container_file` |
 * | `/dev/lxd/sock` | `config["security.devlxd"]` | the same (1.x reads `security.` keys back) |
 */
import { Construct } from "constructs";
import { TerraformStack } from "cdktf";
import type { ITerraformDependable, TerraformProvider } from "cdktf";
import { dependable } from "cdktf/lib/tfExpression";
import versions from "../../versions.json";
import { LxdProvider as LxdProviderV3 } from "../../gen/providers/lxd/provider";
import { Instance } from "../../gen/providers/lxd/instance";
import { StorageVolume } from "../../gen/providers/lxd/storage-volume";
import { InstanceDeviceA } from "../../gen/providers/lxd/instance-device";
import { InstanceFileA } from "../../gen/providers/lxd/instance-file";
import { LxdProvider as LxdProviderV1 } from "../../gen/providers/lxd-v1/provider";
import { Container } from "../../gen/providers/lxd-v1/container";
import { Volume } from "../../gen/providers/lxd-v1/volume";
import { ContainerFileA } from "../../gen/providers/lxd-v1/container-file";
import type { Host, LxdProviderMajor } from "../../lib/host";
import { Problems } from "../../lib/problems";

/** An LXD device as LXD stores it: every property a string. */
export interface LxdDevice {
  readonly name: string;
  readonly type: string;
  readonly properties: Readonly<Record<string, string>>;
}

/** The container resource: `lxd_instance` (3.x) or `lxd_container` (1.x). */
export type LxdInstanceResource = Instance | Container;
/** The storage volume resource: `lxd_storage_volume` (3.x) or `lxd_volume` (1.x). */
export type LxdVolumeResource = StorageVolume | Volume;

export interface LxdInstanceSpec {
  readonly name: string;
  readonly image: string;
  /** Cloud-init user-data, already escaped for Terraform. */
  readonly userData: string;
  /** Resource limits without the `limits.` prefix, e.g. `{ memory: "2GiB" }`. */
  readonly limits: Readonly<Record<string, string>>;
  /** The container's devices. */
  readonly devices: readonly LxdDevice[];
  /** Bare address of the resource whose replacement replaces the container. */
  readonly replaceTriggeredBy: string;
  /**
   * Serve `/dev/lxd/sock` inside the container (`security.devlxd`). It answers every user in the
   * container with the instance's config, user-data included; only cloud-init's LXD datasource
   * needs it.
   */
  readonly devlxd: boolean;
}

export interface LxdVolumeSpec {
  readonly name: string;
  /** `prevent_destroy`. */
  readonly protect: boolean;
}

/**
 * A file written into a running container through the LXD API, never through user-data:
 * what cloud-init reads is world-readable inside the container, a pushed file has the mode
 * and owner given here.
 */
export interface LxdFileSpec {
  readonly containerName: string;
  /** Absolute path inside the container; missing directories are created. */
  readonly path: string;
  /** The content (a Terraform token for secrets). */
  readonly content: string;
  /** @default "0600" */
  readonly mode?: string;
  /** @default 0 (root) */
  readonly uid?: number;
  /** @default 0 (root) */
  readonly gid?: number;
  /** Resources that must exist first. @default none */
  readonly dependsOn?: ITerraformDependable[];
  /** Bare address whose replacement pushes the file again (the container's revision). @default none */
  readonly replaceTriggeredBy?: string;
}

/** A file resource: `lxd_instance_file` (3.x) or `lxd_container_file` (1.x). */
export type LxdFileResource = InstanceFileA | ContainerFileA;

/** A container that devices are added to from outside its ServiceContainer. */
export interface LxdDeviceTarget {
  readonly containerName: string;
  /** The container resource, when it is in this stack. */
  readonly instance?: ITerraformDependable;
  /** Adds devices to the container's own device set, when it is in this stack. */
  readonly addDevices?: (devices: readonly LxdDevice[]) => void;
}

/** One way of writing LXD resources; `lxdDialect(host)` picks the host's. */
export interface LxdDialect {
  readonly major: LxdProviderMajor;
  /** The provider version `required_providers` pins. */
  readonly providerVersion: string;
  provider(scope: Construct, id: string, host: Host): TerraformProvider;
  volume(scope: Construct, id: string, host: Host, spec: LxdVolumeSpec): LxdVolumeResource;
  instance(scope: Construct, id: string, host: Host, spec: LxdInstanceSpec): LxdInstanceResource;
  /** What, besides image and user-data, must replace the container when it changes. */
  replaceTriggers(devices: readonly LxdDevice[]): Record<string, string>;
  /**
   * Adds devices to a container from outside its ServiceContainer (what = the caller, for the
   * error message when the major cannot).
   */
  addDevices(scope: Construct, host: Host, target: LxdDeviceTarget, devices: readonly LxdDevice[], what: string): void;
  /** Pushes a file into a container (see LxdFileSpec). */
  file(scope: Construct, id: string, host: Host, spec: LxdFileSpec): LxdFileResource;
  /**
   * A container's own files (its secrets), delivered with the container: resources named
   * `secret-<name>` in `scope` where the major needs them (returned by name), or part of the
   * container resource itself.
   */
  instanceFiles(scope: Construct, host: Host, instance: LxdInstanceResource, files: readonly LxdInstanceFile[]): Record<string, LxdFileResource>;
}

/** One of a container's own files (see LxdDialect.instanceFiles). */
export interface LxdInstanceFile extends Omit<LxdFileSpec, "dependsOn"> {
  /** Unique within the container; names the resource where there is one. */
  readonly name: string;
}

/** A pushed file's content and its secure defaults: root-owned, 0600, parents created. */
const fileAttributes = (spec: Pick<LxdFileSpec, "content" | "mode" | "uid" | "gid">) => ({
  content: spec.content,
  mode: spec.mode ?? "0600",
  uid: spec.uid ?? 0,
  gid: spec.gid ?? 0,
  createDirectories: true,
});

const fileCommon = (spec: LxdFileSpec) => ({
  ...fileAttributes(spec),
  dependsOn: spec.dependsOn,
  lifecycle: spec.replaceTriggeredBy ? { replaceTriggeredBy: [spec.replaceTriggeredBy] } : undefined,
});

const lxdVersions: Record<string, string> = versions.providers.lxd.versions;

const deviceList = (devices: readonly LxdDevice[]) => devices.map((d) => ({ name: d.name, type: d.type, properties: { ...d.properties } }));

/** Devices as one deterministic string, for the replacement trigger. */
function deviceSetDigest(devices: readonly LxdDevice[]): string {
  const sorted = [...devices].sort((a, b) => a.name.localeCompare(b.name));
  return sorted
    .map((d) => `${d.name} ${d.type} ${Object.keys(d.properties).sort().map((k) => `${k}=${d.properties[k]}`).join(" ")}`)
    .join("\n");
}

/** The latest device resource per container of a stack: LXD refuses parallel device updates (412). */
const deviceChains = new WeakMap<TerraformStack, Map<string, InstanceDeviceA>>();

const v3: LxdDialect = {
  major: 3,
  providerVersion: lxdVersions["3"],
  provider(scope, id, host) {
    return new LxdProviderV3(scope, id, {
      defaultRemote: host.lxd.remoteName,
      remote: [
        {
          name: host.lxd.remoteName,
          address: host.lxd.address,
          clientCertificateFile: host.lxd.clientCertificateFile,
          clientKeyFile: host.lxd.clientKeyFile,
          serverCertificateFingerprint: host.lxd.serverCertificateFingerprint,
        },
        { name: "images", address: host.lxd.imageServer, protocol: "simplestreams" },
      ],
    });
  },
  volume(scope, id, host, spec) {
    return new StorageVolume(scope, id, {
      name: spec.name,
      pool: host.lxd.storagePool,
      project: host.lxd.project,
      target: host.lxd.target,
      lifecycle: { preventDestroy: spec.protect },
    });
  },
  instance(scope, id, host, spec) {
    const instance = new Instance(scope, id, {
      name: spec.name,
      image: spec.image,
      project: host.lxd.project,
      profiles: host.lxd.profiles,
      target: host.lxd.target,
      config: {
        "security.privileged": "false",
        "security.devlxd": String(spec.devlxd),
        "cloud-init.user-data": spec.userData,
        ...Object.fromEntries(Object.entries(spec.limits).map(([k, v]) => [`limits.${k}`, v])),
      },
      waitFor: [{ type: "ipv4", nic: "eth0" }],
      // The create timeout also covers downloading the image on first use.
      timeouts: { create: "15m" },
      // A bare address: cdktf 0.21 renders a resource object here as "${…}", which Terraform refuses.
      lifecycle: { replaceTriggeredBy: [spec.replaceTriggeredBy] },
    });
    instance.putDevice(deviceList(spec.devices));
    return instance;
  },
  replaceTriggers(devices) {
    // 3.x keeps a device whose block was removed from lxd_instance on the container (provider
    // bug): a changed device set replaces the container, so a dropped port or volume is gone.
    return { devices: deviceSetDigest(devices) };
  },
  addDevices(scope, host, target, devices) {
    const stack = TerraformStack.of(scope);
    const stackDevices = deviceChains.get(stack) ?? new Map<string, InstanceDeviceA>();
    deviceChains.set(stack, stackDevices);
    for (const device of devices) {
      const previous = stackDevices.get(target.containerName);
      const dependsOn = [...(target.instance ? [target.instance] : []), ...(previous ? [previous] : [])];
      const resource = new InstanceDeviceA(scope, `proxy-${device.name.replace(/^.*-(v[46])$/, "$1")}`, {
        instanceName: target.containerName,
        project: host.lxd.project,
        name: device.name,
        type: device.type,
        properties: { ...device.properties },
        dependsOn: dependsOn.length ? dependsOn : undefined,
        // Devices live on the instance: when it is replaced, they must be created again.
        lifecycle: target.instance ? { replaceTriggeredBy: [dependable(target.instance)] } : undefined,
      });
      stackDevices.set(target.containerName, resource);
    }
  },
  file(scope, id, host, spec) {
    return new InstanceFileA(scope, id, { instance: spec.containerName, project: host.lxd.project, targetPath: spec.path, ...fileCommon(spec) });
  },
  instanceFiles(scope, host, instance, files) {
    return Object.fromEntries(files.map((f) => [f.name, this.file(scope, `secret-${f.name}`, host, { ...f, dependsOn: [instance] })]));
  },
};

/** A unix:// or https:// address as provider 1.x's `lxd_remote` fields. */
function v1Remote(host: Host): { scheme: string; address: string; port?: string } {
  const https = /^https:\/\/(\[[^\]]+\]|[^/:]+)(?::(\d+))?\/?$/.exec(host.lxd.address);
  if (https) return { scheme: "https", address: https[1], port: https[2] ?? "8443" };
  // `unix://` alone means the daemon's default socket: Debian's package puts it here (the snap
  // at /var/snap/lxd/common/lxd/unix.socket: name it with unix:///var/snap/…).
  const path = host.lxd.address.replace(/^unix:\/\//, "");
  return { scheme: "unix", address: path === "" ? "/var/lib/lxd/unix.socket" : path };
}

/**
 * The first LXD resource of each stack written for 1.x. Provider 1.9.1 creates its client for a
 * remote on first use; when several containers are created at once before that, two goroutines
 * create clients of their own and a container's image and instance calls can use different ones,
 * which LXD then treats as a copy from another server: "The source server isn't listening on the
 * network" (seen in real deploys, one container in seven, not always the same). Everything else
 * waits for the first resource, which leaves the client in place.
 */
const firstV1Resource = new WeakMap<TerraformStack, ITerraformDependable>();

function afterFirstConnection<T extends ITerraformDependable & { dependsOn?: string[] }>(scope: Construct, resource: T): T {
  const stack = TerraformStack.of(scope);
  const first = firstV1Resource.get(stack);
  if (first === undefined) firstV1Resource.set(stack, resource);
  else resource.dependsOn = [...(resource.dependsOn ?? []), dependable(first)];
  return resource;
}

const v1: LxdDialect = {
  major: 1,
  providerVersion: lxdVersions["1"],
  provider(scope, id, host) {
    return new LxdProviderV1(scope, id, {
      // The default 10 s is a fixed delay before every state check: 20 s per create.
      refreshInterval: "1s",
      generateClientCertificates: false,
      acceptRemoteCertificate: false,
      // `remote` on resources stays empty (changing it later replaces them): this remote is the default.
      lxdRemote: [{ name: host.lxd.remoteName, default: true, ...v1Remote(host) }],
    });
  },
  volume(scope, id, host, spec) {
    return afterFirstConnection(
      scope,
      new Volume(scope, id, {
        name: spec.name,
        pool: host.lxd.storagePool,
        target: host.lxd.target,
        lifecycle: { preventDestroy: spec.protect },
      }),
    );
  },
  instance(scope, id, host, spec) {
    const container = new Container(scope, id, {
      name: spec.name,
      image: spec.image,
      profiles: host.lxd.profiles,
      target: host.lxd.target,
      config: {
        "security.privileged": "false",
        "security.devlxd": String(spec.devlxd),
        // 1.x reads back only boot. environment. raw. linux. security. user. keys; the image's
        // cloud-init template falls back to user.user-data.
        "user.user-data": spec.userData,
      },
      limits: Object.keys(spec.limits).length ? { ...spec.limits } : undefined,
      waitForNetwork: true,
      lifecycle: { replaceTriggeredBy: [spec.replaceTriggeredBy] },
    });
    container.putDevice(deviceList(spec.devices));
    return afterFirstConnection(scope, container);
  },
  replaceTriggers() {
    // 1.x deletes the devices of the old set before adding the new ones: devices update in place.
    return {};
  },
  addDevices(_scope, _host, target, devices, what) {
    if (target.addDevices) {
      target.addDevices(devices);
      return;
    }
    const problems = new Problems();
    problems.add(
      "ingress",
      `${what} needs proxy devices on the container ${JSON.stringify(target.containerName)}, which another stack deploys; ` +
        "LXD provider 1.x (host.lxd.provider: 1) has no lxd_instance_device to add them from here. " +
        "Register it in the stack that deploys the ingress proxy, or use provider 3 (host.lxd.provider: 3).",
    );
    problems.throwIfAny(`${what}: not possible with LXD provider 1.x`);
  },
  file(scope, id, _host, spec) {
    return new ContainerFileA(scope, id, { containerName: spec.containerName, targetFile: spec.path, ...fileCommon(spec) });
  },
  instanceFiles(_scope, _host, instance, files) {
    // Uploaded by the create, before the container first starts; a replaced container gets them
    // with it. Read never reports them back, so they cause no drift.
    (instance as Container).putFile(
      files.map((f) => ({ targetFile: f.path, ...fileAttributes(f) })),
    );
    return {};
  },
};

const DIALECTS: Record<LxdProviderMajor, LxdDialect> = { 1: v1, 3: v3 };

/** The dialect of the host's LXD provider major. */
export function lxdDialect(host: Host): LxdDialect {
  return DIALECTS[host.lxd.provider];
}
