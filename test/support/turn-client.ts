/**
 * A minimal TURN client (RFC 8656 over UDP) for tests against a real coturn on loopback:
 * Allocate with long-term credentials (the TURN REST API's time-limited user and password
 * derived from the shared secret) and CreatePermission, whose answer says whether coturn would
 * relay to a peer. It sends no data to any peer: CreatePermission only asks the server.
 */
import * as dgram from "node:dgram";
import * as net from "node:net";
import { createHash, createHmac, randomBytes } from "node:crypto";
import { parseCidr } from "../../lib/render/turnserver";

const MAGIC_COOKIE = 0x2112a442;
const ATTR = {
  USERNAME: 0x0006,
  MESSAGE_INTEGRITY: 0x0008,
  ERROR_CODE: 0x0009,
  XOR_PEER_ADDRESS: 0x0012,
  REALM: 0x0014,
  NONCE: 0x0015,
  XOR_RELAYED_ADDRESS: 0x0016,
  REQUESTED_ADDRESS_FAMILY: 0x0017,
  LIFETIME: 0x000d,
  REQUESTED_TRANSPORT: 0x0019,
} as const;
const METHOD = { ALLOCATE: 0x003, REFRESH: 0x004, CREATE_PERMISSION: 0x008 } as const;
const SUCCESS = 0x100;
const ERROR = 0x110;

/** The TURN REST API credentials coturn's `use-auth-secret` accepts (and Synapse hands out). */
export function restCredentials(sharedSecret: string, user = "test", ttlSeconds = 3600): { username: string; password: string } {
  const username = `${Math.floor(Date.now() / 1000) + ttlSeconds}:${user}`;
  return { username, password: createHmac("sha1", sharedSecret).update(username).digest("base64") };
}

interface Message {
  type: number;
  transactionId: Buffer;
  attributes: Map<number, Buffer>;
}

function attribute(type: number, value: Buffer): Buffer {
  const padded = Buffer.alloc(4 + Math.ceil(value.length / 4) * 4);
  padded.writeUInt16BE(type, 0);
  padded.writeUInt16BE(value.length, 2);
  value.copy(padded, 4);
  return padded;
}

function encode(type: number, transactionId: Buffer, attributes: Buffer[], key?: Buffer): Buffer {
  const body = Buffer.concat(attributes);
  const header = Buffer.alloc(20);
  header.writeUInt16BE(type, 0);
  header.writeUInt16BE(body.length + (key ? 24 : 0), 2);
  header.writeUInt32BE(MAGIC_COOKIE, 4);
  transactionId.copy(header, 8);
  const message = Buffer.concat([header, body]);
  if (!key) return message;
  const integrity = createHmac("sha1", key).update(message).digest();
  return Buffer.concat([message, attribute(ATTR.MESSAGE_INTEGRITY, integrity)]);
}

function decode(data: Buffer): Message | undefined {
  if (data.length < 20 || data.readUInt32BE(4) !== MAGIC_COOKIE) return undefined;
  const attributes = new Map<number, Buffer>();
  const end = Math.min(data.length, 20 + data.readUInt16BE(2));
  for (let at = 20; at + 4 <= end; ) {
    const type = data.readUInt16BE(at);
    const length = data.readUInt16BE(at + 2);
    if (!attributes.has(type)) attributes.set(type, data.subarray(at + 4, at + 4 + length));
    at += 4 + Math.ceil(length / 4) * 4;
  }
  return { type: data.readUInt16BE(0), transactionId: data.subarray(8, 20), attributes };
}

/** XOR-PEER-ADDRESS / XOR-RELAYED-ADDRESS value for `ip`:`port`. */
function xorAddress(ip: string, port: number, transactionId: Buffer): Buffer {
  const v6 = net.isIPv6(ip);
  if (!v6 && !net.isIPv4(ip)) throw new Error(`not an IP address: ${ip}`);
  const raw = v6 ? ipv6Bytes(ip) : Buffer.from(ip.split(".").map(Number));
  const mask = Buffer.alloc(16);
  mask.writeUInt32BE(MAGIC_COOKIE, 0);
  transactionId.copy(mask, 4);
  const value = Buffer.alloc(4 + raw.length);
  value.writeUInt8(v6 ? 0x02 : 0x01, 1);
  value.writeUInt16BE(port ^ (MAGIC_COOKIE >>> 16), 2);
  for (let i = 0; i < raw.length; i++) value[4 + i] = raw[i] ^ mask[i];
  return value;
}

function ipv6Bytes(ip: string): Buffer {
  const value = parseCidr(`${ip}/128`).first;
  const out = Buffer.alloc(16);
  for (let i = 0; i < 16; i++) out[i] = Number((value >> BigInt(8 * (15 - i))) & 0xffn);
  return out;
}

function decodeXorAddress(value: Buffer, transactionId: Buffer): string {
  const mask = Buffer.alloc(16);
  mask.writeUInt32BE(MAGIC_COOKIE, 0);
  transactionId.copy(mask, 4);
  const port = value.readUInt16BE(2) ^ (MAGIC_COOKIE >>> 16);
  const raw = Buffer.from(value.subarray(4).map((b, i) => b ^ mask[i]));
  if (value[1] === 0x01) return `${[...raw].join(".")}:${port}`;
  const groups = Array.from({ length: 8 }, (_, i) => raw.readUInt16BE(i * 2).toString(16));
  return `[${groups.join(":")}]:${port}`;
}

/** An answer: `ok`, or the STUN error code and reason phrase. */
export type TurnAnswer = { ok: true } | { ok: false; code: number; reason: string };

function answerOf(message: Message, method: number): TurnAnswer {
  if (message.type === (method | SUCCESS)) return { ok: true };
  if (message.type === (method | ERROR)) {
    const e = message.attributes.get(ATTR.ERROR_CODE);
    if (!e) return { ok: false, code: 0, reason: "error response without ERROR-CODE" };
    return { ok: false, code: (e[2] & 0x7) * 100 + e[3], reason: e.subarray(4).toString("utf8") };
  }
  return { ok: false, code: 0, reason: `unexpected message type 0x${message.type.toString(16)}` };
}

/** One client 5-tuple (a UDP socket on loopback) with at most one allocation. */
export class TurnClient {
  private readonly socket: dgram.Socket;
  private readonly pending = new Map<string, (m: Message) => void>();
  private auth?: { username: string; realm: Buffer; nonce: Buffer; key: Buffer };
  /** The relayed transport address of the allocation. */
  relayed?: string;
  /** The realm of the server's 401 challenge, once `allocate` has seen it. */
  get realm(): string | undefined {
    return this.auth?.realm.toString("utf8");
  }

  private constructor(
    private readonly server: { host: string; port: number },
    family: "udp4" | "udp6",
  ) {
    this.socket = dgram.createSocket(family);
    this.socket.on("message", (data) => {
      const m = decode(data);
      if (!m) return;
      const waiter = this.pending.get(m.transactionId.toString("hex"));
      if (waiter) waiter(m);
    });
  }

  static async connect(host: string, port: number): Promise<TurnClient> {
    const client = new TurnClient({ host, port }, net.isIPv6(host) ? "udp6" : "udp4");
    // Any local address: the kernel picks the one that routes to the server (on loopback in the
    // unit tests, the bridge address towards a container or the host's proxy devices).
    await new Promise<void>((resolve, reject) => {
      client.socket.once("error", reject);
      client.socket.bind(0, () => {
        client.socket.off("error", reject);
        resolve();
      });
    });
    return client;
  }

  private async request(method: number, attributes: (tid: Buffer) => Buffer[], authenticated: boolean): Promise<Message> {
    for (let attempt = 0; attempt < 3; attempt++) {
      const tid = randomBytes(12);
      const attrs = attributes(tid);
      if (authenticated && this.auth) {
        attrs.push(attribute(ATTR.USERNAME, Buffer.from(this.auth.username)), attribute(ATTR.REALM, this.auth.realm), attribute(ATTR.NONCE, this.auth.nonce));
      }
      const message = encode(method, tid, attrs, authenticated ? this.auth?.key : undefined);
      const answer = await new Promise<Message>((resolve, reject) => {
        const key = tid.toString("hex");
        let timer: NodeJS.Timeout;
        const send = (n: number) => {
          this.socket.send(message, this.server.port, this.server.host);
          timer = setTimeout(() => (n < 4 ? send(n + 1) : (this.pending.delete(key), reject(new Error(`no answer from ${this.server.host}:${this.server.port} to TURN method 0x${method.toString(16)}`)))), 500);
        };
        this.pending.set(key, (m) => {
          clearTimeout(timer);
          this.pending.delete(key);
          resolve(m);
        });
        send(0);
      });
      const result = answerOf(answer, method);
      // 438 Stale Nonce: retry with the new nonce.
      if (!result.ok && result.code === 438 && this.auth) {
        const nonce = answer.attributes.get(ATTR.NONCE);
        if (nonce) this.auth.nonce = Buffer.from(nonce);
        continue;
      }
      return answer;
    }
    throw new Error("coturn kept answering 438 Stale Nonce");
  }

  /** Allocates a UDP relay of `family` with long-term credentials (first unauthenticated, then with the realm and nonce of the 401). */
  async allocate(username: string, password: string, family: "ipv4" | "ipv6" = "ipv4"): Promise<TurnAnswer> {
    const attributes = () => {
      const transport = Buffer.from([17, 0, 0, 0]);
      const list = [attribute(ATTR.REQUESTED_TRANSPORT, transport)];
      if (family === "ipv6") list.push(attribute(ATTR.REQUESTED_ADDRESS_FAMILY, Buffer.from([0x02, 0, 0, 0])));
      return list;
    };
    const challenge = await this.request(METHOD.ALLOCATE, attributes, false);
    const first = answerOf(challenge, METHOD.ALLOCATE);
    if (first.ok || first.code !== 401) return first.ok ? { ok: false, code: 0, reason: "allocated without credentials" } : first;
    const realm = challenge.attributes.get(ATTR.REALM);
    const nonce = challenge.attributes.get(ATTR.NONCE);
    if (!realm || !nonce) return { ok: false, code: 401, reason: "401 without REALM or NONCE" };
    const key = createHash("md5").update(`${username}:${realm.toString("utf8")}:${password}`).digest();
    this.auth = { username, realm: Buffer.from(realm), nonce: Buffer.from(nonce), key };
    const answer = await this.request(METHOD.ALLOCATE, attributes, true);
    const relayed = answer.attributes.get(ATTR.XOR_RELAYED_ADDRESS);
    if (relayed) this.relayed = decodeXorAddress(relayed, answer.transactionId);
    return answerOf(answer, METHOD.ALLOCATE);
  }

  /** Asks for a permission to `peer` (port 9; permissions ignore the port). */
  async createPermission(peer: string): Promise<TurnAnswer> {
    const answer = await this.request(METHOD.CREATE_PERMISSION, (tid) => [attribute(ATTR.XOR_PEER_ADDRESS, xorAddress(peer, 9, tid))], true);
    return answerOf(answer, METHOD.CREATE_PERMISSION);
  }

  /** Releases the allocation (Refresh with lifetime 0) and closes the socket. */
  async close(): Promise<void> {
    if (this.auth && this.relayed) {
      await this.request(METHOD.REFRESH, () => [attribute(ATTR.LIFETIME, Buffer.from([0, 0, 0, 0]))], true).catch(() => undefined);
    }
    await new Promise<void>((resolve) => this.socket.close(() => resolve()));
  }
}
