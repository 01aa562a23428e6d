#!/usr/bin/env python3
"""An independent decryptor for Sealgate sealed artifacts, written from
docs/ARTIFACT-FORMAT.md alone (it imports nothing of the Rust code base).

It only handles data keys wrapped by the `customer-provided` provider, which needs no KMS.
It exists to prove the format document is complete: if this script and the Rust reader
agree on the vectors, someone else can write a decryptor too.

    python3 tests/interop/open_sealed.py --vectors models/vectors/artifact-v1.json
    python3 tests/interop/open_sealed.py --key KEY.hex FILE.sealed > model.onnx
"""

import argparse
import hashlib
import hmac
import json
import struct
import sys

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand


class Invalid(Exception):
    """The artifact is malformed, tampered with, or not for this key."""


class Reader:
    def __init__(self, data):
        self.data, self.pos = data, 0

    def take(self, n):
        if self.pos + n > len(self.data):
            raise Invalid("truncated header")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def u(self, n):
        return int.from_bytes(self.take(n), "big")


def hkdf_extract(salt, ikm):
    return hmac.new(salt, ikm, hashlib.sha256).digest()


def hkdf_expand(prk, info, n):
    return HKDFExpand(hashes.SHA256(), n, info).derive(prk)


def canonical(context):
    out = b""
    for k in sorted(context):
        for part in (k.encode(), context[k].encode()):
            out += struct.pack(">I", len(part)) + part
    return out


def open_artifact(data, customer_key):
    r = Reader(data)
    if r.take(8) != b"SGSEALED" or r.u(1) != 1 or r.u(2) != 1:
        raise Invalid("not a v1 sealed artifact")
    message_id = r.take(32)
    frame_size = r.u(4)
    if not 4096 <= frame_size <= 64 << 20:
        raise Invalid("frame size out of range")
    context = {}
    for _ in range(r.u(2)):
        k = r.take(r.u(2)).decode()
        context[k] = r.take(r.u(2)).decode()
    commitment = r.take(32)
    fixed_end = r.pos
    wrapped = []
    for _ in range(r.u(1)):
        provider = r.take(r.u(1)).decode()
        key_id = r.take(r.u(2)).decode()
        wrapped.append((provider, key_id, r.take(r.u(2))))
    keys_end = r.pos
    header_mac = r.take(32)
    fixed, key_section, body = data[:fixed_end], data[fixed_end:keys_end], data[r.pos:]

    fingerprint = hashlib.sha256(b"sealgate customer key" + customer_key).digest()[:8].hex()
    dek = None
    for provider, key_id, ct in wrapped:
        if provider == "customer-provided" and key_id == fingerprint:
            try:
                dek = AESGCM(customer_key).decrypt(ct[:12], ct[12:], canonical(context))
            except Exception as e:  # InvalidTag: wrong context or tampered wrapped key
                raise Invalid("the data key does not unwrap") from e
    if dek is None:
        raise Invalid("no data key wrapped for this customer key")

    prk = hkdf_extract(message_id, dek)
    body_key = hkdf_expand(prk, b"sealgate v1 body key", 32)
    mac_key = hkdf_expand(prk, b"sealgate v1 header mac", 32)
    if not hmac.compare_digest(hkdf_expand(prk, b"sealgate v1 key commitment", 32), commitment):
        raise Invalid("key commitment mismatch")
    if not hmac.compare_digest(hmac.new(mac_key, fixed + key_section, hashlib.sha256).digest(), header_mac):
        raise Invalid("header MAC mismatch")

    full = frame_size + 16
    if len(body) % full < 16:
        raise Invalid("truncated body")
    digest = hashlib.sha256(fixed).digest()
    aead = AESGCM(body_key)
    out = bytearray()
    i, pos = 0, 0
    while True:
        last = len(body) - pos < full
        chunk = body[pos:] if last else body[pos:pos + full]
        nonce = b"\0" * 4 + struct.pack(">Q", i)
        aad = digest + struct.pack(">Q", i) + (b"\x01" if last else b"\x00")
        try:
            out += aead.decrypt(nonce, chunk, aad)
        except Exception as e:
            raise Invalid(f"frame {i} failed authentication") from e
        if last:
            break
        pos += full
        i += 1
    if hashlib.sha256(out).hexdigest() != context.get("sha256"):
        raise Invalid("plaintext digest mismatch")
    return context, bytes(out)


def check_vectors(path):
    v = json.load(open(path))
    key = bytes.fromhex(v["customer_key"])
    context, plain = open_artifact(bytes.fromhex(v["artifact"]), key)
    assert plain == bytes.fromhex(v["plaintext"]), "plaintext differs"
    print(f"ok: vector opens to {len(plain)} bytes of {context['model']}@{context['version']}")
    for t in v["tampered"]:
        try:
            open_artifact(bytes.fromhex(t["artifact"]), key)
        except Invalid as e:
            print(f"ok: refused ({t['what']}): {e}")
        else:
            print(f"FAIL: accepted a tampered artifact: {t['what']}")
            return 1
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--vectors")
    p.add_argument("--key", help="file holding the customer key as 64 hex characters")
    p.add_argument("file", nargs="?")
    a = p.parse_args()
    if a.vectors:
        return check_vectors(a.vectors)
    if not (a.key and a.file):
        p.error("give --vectors, or --key and a file")
    key = bytes.fromhex(open(a.key).read().strip())
    try:
        _, plain = open_artifact(open(a.file, "rb").read(), key)
    except Invalid as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    sys.stdout.buffer.write(plain)
    return 0


if __name__ == "__main__":
    sys.exit(main())
