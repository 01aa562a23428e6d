#!/usr/bin/env python3
"""An independent decryptor for Sealgate sealed artifacts, written from
docs/ARTIFACT-FORMAT.md alone (it imports nothing of the Rust code base).

It opens format version 1 (one ONNX file) and version 2 (the ONNX file plus the external
data files it references, listed in a files section of the fixed header). It only handles
data keys wrapped by the `customer-provided` provider, which needs no KMS. It exists to
prove the format document is complete: if this script and the Rust reader agree on the
vectors, someone else can write a decryptor too.

    python3 tests/interop/open_sealed.py --vectors models/vectors/artifact-v1.json
    python3 tests/interop/open_sealed.py --vectors models/vectors/artifact-v2.json
    python3 tests/interop/open_sealed.py --key KEY.hex FILE.sealed > model.onnx
    python3 tests/interop/open_sealed.py --key KEY.hex --out-dir DIR FILE.sealed

The first form with --key needs an artifact that holds one file; --out-dir writes every
file under DIR by its name (a version 1 plaintext as model.onnx).
"""

import argparse
import hashlib
import hmac
import json
import os
import struct
import sys

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

V1_NAME = "model.onnx"


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

    def text(self, n):
        try:
            return self.take(n).decode("utf-8")
        except UnicodeDecodeError:
            raise Invalid("malformed header: text that is not UTF-8") from None


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


def valid_name(name):
    """A v2 file name: relative, `/`-separated, no empty, `.` or `..` component, no `\\` or NUL."""
    if not name or "\\" in name or "\0" in name:
        return False
    return all(c not in ("", ".", "..") for c in name.split("/"))


def read_files_section(r):
    count = r.u(2)
    if not 1 <= count <= 256:
        raise Invalid(f"malformed files section: {count} files")
    files = []
    for _ in range(count):
        n = r.u(2)
        name = r.text(n)
        size, digest = r.u(8), r.take(32)
        if not 1 <= n <= 255 or not valid_name(name):
            raise Invalid(f"malformed file name {name[:64]!r}")
        if any(name == f[0] for f in files):
            raise Invalid(f"malformed files section: {name!r} listed twice")
        files.append((name, size, digest))
    return files


def open_artifact(data, customer_key):
    """Returns (version, context, [(name, plaintext)]); a v1 file is named model.onnx."""
    r = Reader(data)
    if r.take(8) != b"SGSEALED":
        raise Invalid("not a sealed artifact")
    version = r.u(1)
    if version not in (1, 2) or r.u(2) != 1:
        raise Invalid("not a v1 or v2 sealed artifact")
    message_id = r.take(32)
    frame_size = r.u(4)
    if not 4096 <= frame_size <= 64 << 20:
        raise Invalid("frame size out of range")
    context = {}
    for _ in range(r.u(2)):
        k = r.text(r.u(2))
        context[k] = r.text(r.u(2))
    files = read_files_section(r) if version == 2 else None
    commitment = r.take(32)
    fixed_end = r.pos
    wrapped = []
    for _ in range(r.u(1)):
        provider = r.text(r.u(1))
        key_id = r.text(r.u(2))
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
    plain_len = len(body) // full * frame_size + len(body) % full - 16
    if files is not None and plain_len != sum(f[1] for f in files):
        raise Invalid(f"body holds {plain_len} bytes, the files section lists "
                      f"{sum(f[1] for f in files)}")
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

    if files is None:
        if hashlib.sha256(out).hexdigest() != context.get("sha256"):
            raise Invalid("plaintext digest mismatch")
        return version, context, [(V1_NAME, bytes(out))]
    if files[0][2].hex() != context.get("sha256"):
        raise Invalid("context sha256 is not file 0's digest")
    result, pos = [], 0
    for name, size, file_digest in files:
        plain = bytes(out[pos:pos + size])
        pos += size
        if hashlib.sha256(plain).digest() != file_digest:
            raise Invalid(f"plaintext digest mismatch for {name!r}")
        result.append((name, plain))
    return version, context, result


def write_out_dir(out_dir, files):
    """Writes each file under out_dir by name; refuses a name that would land outside it
    (the reader has rejected such names already; this also catches symlinks in out_dir)."""
    root = os.path.realpath(out_dir)

    def inside(path):
        path = os.path.realpath(path)
        return path != root and os.path.commonpath([root, path]) == root

    targets = [os.path.join(root, *name.split("/")) if valid_name(name) else None
               for name, _ in files]
    for (name, _), target in zip(files, targets):  # check them all before writing any
        if target is None or not inside(target):
            raise Invalid(f"refusing to write {name!r}: it is not a path inside {out_dir}")
    os.makedirs(root, exist_ok=True)
    for (name, plain), target in zip(files, targets):
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if not inside(target):  # the folders may have changed since the check
            raise Invalid(f"refusing to write {name!r}: it is not a path inside {out_dir}")
        with open(target, "wb") as f:
            f.write(plain)


def check_vectors(path):
    v = json.load(open(path))
    key = bytes.fromhex(v["customer_key"])
    version, context, files = open_artifact(bytes.fromhex(v["artifact"]), key)
    if "files" in v:
        want = [(f["name"], bytes.fromhex(f["plaintext"])) for f in v["files"]]
        assert version == 2, f"a files list, but the artifact is version {version}"
    else:
        want = [(V1_NAME, bytes.fromhex(v["plaintext"]))]
        assert version == 1, f"one plaintext, but the artifact is version {version}"
    assert [f[0] for f in files] == [f[0] for f in want], "file names differ"
    for (name, got), (_, expected) in zip(files, want):
        assert got == expected, f"plaintext of {name!r} differs"
    size = sum(len(p) for _, p in files)
    what = f"{len(files)} files ({', '.join(n for n, _ in files)})" if version == 2 else "1 file"
    print(f"ok: v{version} vector opens to {size} bytes in {what} "
          f"of {context['model']}@{context['version']}")
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
    p.add_argument("--out-dir", help="write every file of the artifact under this folder")
    p.add_argument("file", nargs="?")
    a = p.parse_args()
    if a.vectors:
        return check_vectors(a.vectors)
    if not (a.key and a.file):
        p.error("give --vectors, or --key and a file")
    key = bytes.fromhex(open(a.key).read().strip())
    try:
        _, _, files = open_artifact(open(a.file, "rb").read(), key)
        if a.out_dir:
            write_out_dir(a.out_dir, files)
            return 0
    except Invalid as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if len(files) != 1:
        print(f"error: the artifact holds {len(files)} files: give --out-dir", file=sys.stderr)
        return 1
    sys.stdout.buffer.write(files[0][1])
    return 0


if __name__ == "__main__":
    sys.exit(main())
