#!/usr/bin/env python3
"""A minimal TURN client (RFC 5766/8656 over UDP, long-term credentials) for the real-LXD suite.

It makes one Allocate with the TURN REST API credentials derived from the shared secret, then
one CreatePermission per peer address and reports each answer. CreatePermission only installs
a permission on the server: no data is ever sent to any peer.

Usage: turn_probe.py SERVER_IP PORT SHARED_SECRET USER PEER_IP [PEER_IP...]
Prints one JSON object: {"allocate": {...}, "wrong_password": {...}, "permissions": {peer: {...}}}
"""
import base64
import hashlib
import hmac
import ipaddress
import json
import os
import socket
import struct
import sys
import time
import zlib

MAGIC = 0x2112A442
ALLOCATE, CREATE_PERMISSION, REFRESH = 0x0003, 0x0008, 0x0004
A_USERNAME, A_MI, A_ERROR, A_REALM, A_NONCE = 0x0006, 0x0008, 0x0009, 0x0014, 0x0015
A_XOR_PEER, A_XOR_RELAYED, A_XOR_MAPPED, A_LIFETIME, A_TRANSPORT, A_FINGERPRINT = 0x0012, 0x0016, 0x0020, 0x000D, 0x0019, 0x8028


def attr(t, value):
    pad = (4 - len(value) % 4) % 4
    return struct.pack("!HH", t, len(value)) + value + b"\0" * pad


def xor_address(ip, port):
    addr = ipaddress.ip_address(ip)
    xport = port ^ (MAGIC >> 16)
    if addr.version == 4:
        x = int(addr) ^ MAGIC
        return struct.pack("!BBH", 0, 1, xport) + struct.pack("!I", x)
    raise ValueError("IPv4 peers only: the allocation is IPv4 (%s)" % ip)


def parse_xor_address(value, tid):
    family, xport = value[1], struct.unpack("!H", value[2:4])[0]
    port = xport ^ (MAGIC >> 16)
    if family == 1:
        ip = str(ipaddress.IPv4Address(struct.unpack("!I", value[4:8])[0] ^ MAGIC))
    else:
        key = struct.pack("!I", MAGIC) + tid
        ip = str(ipaddress.IPv6Address(bytes(a ^ b for a, b in zip(value[4:20], key))))
    return "%s:%d" % (ip, port)


def message(method, attrs, key=None):
    tid = os.urandom(12)
    body = b"".join(attrs)
    if key is not None:
        # MESSAGE-INTEGRITY over the header with a length that already counts it (24 bytes).
        header = struct.pack("!HHI", method, len(body) + 24, MAGIC) + tid
        mi = hmac.new(key, header + body, hashlib.sha1).digest()
        body += attr(A_MI, mi)
    # FINGERPRINT
    header = struct.pack("!HHI", method, len(body) + 8, MAGIC) + tid
    crc = (zlib.crc32(header + body) & 0xFFFFFFFF) ^ 0x5354554E
    body += attr(A_FINGERPRINT, struct.pack("!I", crc))
    return tid, struct.pack("!HHI", method, len(body), MAGIC) + tid + body


def parse(data):
    mtype, length, _magic = struct.unpack("!HHI", data[:8])
    tid = data[8:20]
    attrs, i = {}, 20
    while i < 20 + length:
        t, l = struct.unpack("!HH", data[i:i + 4])
        attrs.setdefault(t, data[i + 4:i + 4 + l])
        i += 4 + l + (4 - l % 4) % 4
    cls = ((mtype >> 4) & 1) | ((mtype >> 7) & 2)  # 0 request, 1 indication, 2 success, 3 error
    out = {"class": {2: "success", 3: "error"}.get(cls, str(cls))}
    if A_ERROR in attrs:
        v = attrs[A_ERROR]
        out["code"] = (v[2] & 7) * 100 + v[3]
        out["reason"] = v[4:].decode("utf-8", "replace")
    if A_XOR_RELAYED in attrs:
        out["relayed"] = parse_xor_address(attrs[A_XOR_RELAYED], tid)
    if A_XOR_MAPPED in attrs:
        out["mapped"] = parse_xor_address(attrs[A_XOR_MAPPED], tid)
    return out, attrs, tid


class Client:
    def __init__(self, server, port):
        self.addr = (server, port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.settimeout(3)

    def transact(self, method, attrs, key=None):
        tid, data = message(method, attrs, key)
        for _ in range(3):
            self.sock.sendto(data, self.addr)
            try:
                while True:
                    reply, _src = self.sock.recvfrom(4096)
                    out, rattrs, rtid = parse(reply)
                    if rtid == tid:
                        return out, rattrs
            except socket.timeout:
                continue
        return {"class": "timeout"}, {}


def allocate(server, port, username, password):
    c = Client(server, port)
    req = [attr(A_TRANSPORT, bytes([17, 0, 0, 0])), attr(A_LIFETIME, struct.pack("!I", 120))]
    first, rattrs = c.transact(ALLOCATE, req)
    if first.get("code") != 401:
        return c, None, {"first": first}
    realm, nonce = rattrs[A_REALM], rattrs[A_NONCE]
    key = hashlib.md5(username.encode() + b":" + realm + b":" + password.encode()).digest()
    auth = [attr(A_USERNAME, username.encode()), attr(A_REALM, realm), attr(A_NONCE, nonce)]
    out, _ = c.transact(ALLOCATE, req + auth, key)
    out["realm"] = realm.decode()
    return c, (auth, key), out


def main():
    server, port, secret, user = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    peers = sys.argv[5:]
    username = "%d:%s" % (int(time.time()) + 600, user)
    password = base64.b64encode(hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()).decode()
    result = {}
    _c, _auth, wrong = allocate(server, port, username, password[:-2] + "AA")
    result["wrong_password"] = wrong
    c, auth, out = allocate(server, port, username, password)
    result["allocate"] = out
    result["permissions"] = {}
    if auth and out.get("class") == "success":
        attrs, key = auth
        for peer in peers:
            p, _ = c.transact(CREATE_PERMISSION, [attr(A_XOR_PEER, xor_address(peer, 0))] + attrs, key)
            result["permissions"][peer] = p
        # Release the allocation (lifetime 0).
        c.transact(REFRESH, [attr(A_LIFETIME, struct.pack("!I", 0))] + attrs, key)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
