#!/usr/bin/env python3
"""Independent Oblivious HTTP client for checking the Sealgate gateway.

Written from the RFCs alone, without reference to the Rust code under test,
so that a shared misreading of the specification cannot hide in both:

  RFC 9458  Oblivious HTTP: key configuration (section 3), request
            encapsulation (4.3), response encapsulation (4.4), Appendix A.
  RFC 9292  Binary HTTP: known-length messages (request encoding; response
            decoding also accepts the indeterminate-length form and
            truncation/padding, as any recipient must).
  RFC 9000  section 16: the variable-length integers Binary HTTP uses.
  RFC 9180  HPKE, via the `pyhpke` package (base mode only); the response
            key schedule of RFC 9458 section 4.4 is done here with
            `cryptography`'s HKDF and AEAD primitives.

Every run first checks itself against the RFC 9458 Appendix A example
(protocol/vectors/rfc9458-appendix-a.json) byte for byte, and only then talks to a server:

  python3 tests/interop/ohttp_client.py --self-test
  python3 tests/interop/ohttp_client.py --url https://127.0.0.1:8443 \\
      --ca CA.pem --aead chacha20poly1305 --model breast-cancer \\
      --onnx models/demo/breast-cancer.onnx \\
      --input models/demo/breast-cancer.example.json

The server check fetches the key configurations from
GET /.well-known/ohttp-gateway (application/ohttp-keys), encapsulates
POST /v2/models/{model}/infer with the KServe V2 JSON body, POSTs it to
/.well-known/ohttp-gateway (message/ohttp-req -> message/ohttp-res), opens
the answer and compares the inference result with Python onnxruntime on the
same model and input: labels equal, probabilities within 1e-6.

Exit status: 0 match; 1 the server's answer is wrong or the exchange failed;
2 bad command line; 3 the self-test failed (nothing was sent).
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import ssl
import sys
from dataclasses import dataclass, field
from email.utils import formatdate
from pathlib import Path
from urllib.parse import urlsplit

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand
from pyhpke import AEADId, CipherSuite, KDFId, KEMId, KEMKeyPair

HERE = Path(__file__).resolve().parent
DEFAULT_VECTORS = HERE.parent.parent / "protocol" / "vectors" / "rfc9458-appendix-a.json"

GATEWAY_PATH = "/.well-known/ohttp-gateway"
KEYS_MEDIA_TYPE = "application/ohttp-keys"
REQUEST_MEDIA_TYPE = "message/ohttp-req"
RESPONSE_MEDIA_TYPE = "message/ohttp-res"

# RFC 9458 section 4.3 and 4.4 labels.
REQUEST_LABEL = b"message/bhttp request"
RESPONSE_LABEL = b"message/bhttp response"

PROBABILITY_TOLERANCE = 1e-6

EXIT_OK, EXIT_MISMATCH, EXIT_USAGE, EXIT_SELF_TEST = 0, 1, 2, 3


class InteropError(Exception):
    """The server (or a message) did not do what the RFCs or KServe V2 say."""


# ---------------------------------------------------------------------------
# Algorithm identifiers (IANA HPKE registries, RFC 9180 section 7)
# ---------------------------------------------------------------------------

# KEM id -> (name, Npk). Npk is needed just to find where the public key ends
# in a key configuration, so unknown KEMs can be skipped but not parsed.
KEMS = {
    0x0010: ("P-256", 65),
    0x0011: ("P-384", 97),
    0x0012: ("P-521", 133),
    0x0020: ("X25519", 32),
    0x0021: ("X448", 56),
}
KEM_X25519 = 0x0020
X25519_NENC = 32  # the encapsulated key is the ephemeral public key

# KDF id -> (name, hash used by HKDF)
KDFS = {
    0x0001: ("HKDF-SHA256", hashes.SHA256),
    0x0002: ("HKDF-SHA384", hashes.SHA384),
    0x0003: ("HKDF-SHA512", hashes.SHA512),
}
KDF_HKDF_SHA256 = 0x0001


@dataclass(frozen=True)
class Aead:
    aead_id: int
    name: str
    cli_name: str
    nk: int  # key length
    nn: int  # nonce length
    primitive: type

    def seal(self, key: bytes, nonce: bytes, plaintext: bytes) -> bytes:
        return self.primitive(key).encrypt(nonce, plaintext, b"")

    def open(self, key: bytes, nonce: bytes, ciphertext: bytes) -> bytes:
        return self.primitive(key).decrypt(nonce, ciphertext, b"")


AEADS = {
    a.aead_id: a
    for a in (
        Aead(0x0001, "AES-128-GCM", "aes128gcm", 16, 12, AESGCM),
        Aead(0x0002, "AES-256-GCM", "aes256gcm", 32, 12, AESGCM),
        Aead(0x0003, "ChaCha20-Poly1305", "chacha20poly1305", 32, 12, ChaCha20Poly1305),
    )
}
AEAD_BY_CLI_NAME = {a.cli_name: a for a in AEADS.values()}


# ---------------------------------------------------------------------------
# Byte reading helpers and QUIC variable-length integers (RFC 9000 section 16)
# ---------------------------------------------------------------------------


class Reader:
    """Cursor over bytes that fails loudly on truncation."""

    def __init__(self, data: bytes, what: str):
        self.data = data
        self.pos = 0
        self.what = what

    def remaining(self) -> int:
        return len(self.data) - self.pos

    def at_end(self) -> bool:
        return self.pos >= len(self.data)

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise InteropError(
                f"{self.what}: truncated (need {n} bytes at offset {self.pos}, have {self.remaining()})"
            )
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def uint(self, n: int) -> int:
        return int.from_bytes(self.take(n), "big")

    def varint(self) -> int:
        first = self.take(1)[0]
        # The two high bits give the total length: 1, 2, 4 or 8 bytes.
        length = 1 << (first >> 6)
        value = first & 0x3F
        for b in self.take(length - 1):
            value = (value << 8) | b
        return value

    def vbytes(self) -> bytes:
        """A varint length followed by that many bytes."""
        return self.take(self.varint())


def encode_varint(value: int) -> bytes:
    """Shortest encoding, as RFC 9000 recommends (decoders accept any)."""
    if value < 0:
        raise ValueError("varint must be non-negative")
    for length, prefix in ((1, 0x00), (2, 0x40), (4, 0x80), (8, 0xC0)):
        if value < 1 << (8 * length - 2):
            out = bytearray(value.to_bytes(length, "big"))
            out[0] |= prefix
            return bytes(out)
    raise ValueError("varint too large (max 2^62 - 1)")


def encode_vbytes(data: bytes) -> bytes:
    return encode_varint(len(data)) + data


# ---------------------------------------------------------------------------
# Binary HTTP (RFC 9292)
# ---------------------------------------------------------------------------

FRAMING_KNOWN_REQUEST = 0
FRAMING_KNOWN_RESPONSE = 1
FRAMING_INDETERMINATE_REQUEST = 2
FRAMING_INDETERMINATE_RESPONSE = 3

Fields = list[tuple[bytes, bytes]]


@dataclass
class BhttpRequest:
    method: bytes
    scheme: bytes
    authority: bytes
    path: bytes
    headers: Fields = field(default_factory=list)
    content: bytes = b""
    trailers: Fields = field(default_factory=list)


@dataclass
class BhttpResponse:
    status: int
    headers: Fields = field(default_factory=list)
    content: bytes = b""
    trailers: Fields = field(default_factory=list)
    informational: list[tuple[int, Fields]] = field(default_factory=list)

    def header(self, name: str) -> str | None:
        key = name.lower().encode()
        for k, v in self.headers:
            if k.lower() == key:
                return v.decode("latin-1")
        return None


def _encode_known_fields(fields: Fields) -> bytes:
    # Field names go lowercase, as in HTTP/2 and HTTP/3 (RFC 9292 section 3.6
    # carries fields the way those versions do).
    lines = b"".join(encode_vbytes(name.lower()) + encode_vbytes(value) for name, value in fields)
    return encode_vbytes(lines)


def encode_request(req: BhttpRequest, truncate: bool = False) -> bytes:
    """Known-length request (RFC 9292 section 3.1, framing indicator 0).

    With truncate=True, trailing empty sections are left off, which section
    3.8 allows; the RFC 9458 example request is written that way. The
    gateway check sends the full form.
    """
    parts = [
        encode_varint(FRAMING_KNOWN_REQUEST),
        encode_vbytes(req.method),
        encode_vbytes(req.scheme),
        encode_vbytes(req.authority),
        encode_vbytes(req.path),
    ]
    tail = [_encode_known_fields(req.headers), encode_vbytes(req.content), _encode_known_fields(req.trailers)]
    if truncate:
        # Each empty section encodes as the single byte 0x00.
        while tail and tail[-1] == b"\x00":
            tail.pop()
    return b"".join(parts + tail)


def _decode_fields(r: Reader, known_length: bool) -> Fields:
    fields: Fields = []
    if known_length:
        section = Reader(r.vbytes(), r.what + " field section")
        while not section.at_end():
            fields.append((section.vbytes(), section.vbytes()))
    else:
        # Indeterminate length: field lines until a zero-length name.
        while True:
            name = r.vbytes()
            if not name:
                break
            fields.append((name, r.vbytes()))
    return fields


def _decode_content(r: Reader, known_length: bool) -> bytes:
    if known_length:
        return r.vbytes()
    chunks = []
    while True:
        chunk = r.vbytes()
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def _check_padding(r: Reader) -> None:
    # Section 3.8: anything after the message must be zero-valued padding.
    rest = r.take(r.remaining())
    if rest.strip(b"\x00"):
        raise InteropError(f"{r.what}: non-zero bytes after the end of the message")


def decode_request(data: bytes) -> BhttpRequest:
    """Known- or indeterminate-length request; used by the self-test."""
    r = Reader(data, "binary HTTP request")
    framing = r.varint()
    if framing not in (FRAMING_KNOWN_REQUEST, FRAMING_INDETERMINATE_REQUEST):
        raise InteropError(f"binary HTTP request: framing indicator {framing} is not a request")
    known = framing == FRAMING_KNOWN_REQUEST
    req = BhttpRequest(r.vbytes(), r.vbytes(), r.vbytes(), r.vbytes())
    # Sections after the control data may be truncated away when empty.
    if not r.at_end():
        req.headers = _decode_fields(r, known)
    if not r.at_end():
        req.content = _decode_content(r, known)
    if not r.at_end():
        req.trailers = _decode_fields(r, known)
    _check_padding(r)
    return req


def encode_response(resp: BhttpResponse) -> bytes:
    """Known-length response (framing indicator 1); used by the self-test."""
    parts = [encode_varint(FRAMING_KNOWN_RESPONSE)]
    for status, fields in resp.informational:
        parts += [encode_varint(status), _encode_known_fields(fields)]
    parts += [
        encode_varint(resp.status),
        _encode_known_fields(resp.headers),
        encode_vbytes(resp.content),
        _encode_known_fields(resp.trailers),
    ]
    return b"".join(parts)


def decode_response(data: bytes) -> BhttpResponse:
    """Known-length (1) or indeterminate-length (3) response, RFC 9292 3.2/3.5."""
    r = Reader(data, "binary HTTP response")
    framing = r.varint()
    if framing not in (FRAMING_KNOWN_RESPONSE, FRAMING_INDETERMINATE_RESPONSE):
        raise InteropError(f"binary HTTP response: framing indicator {framing} is not a response")
    known = framing == FRAMING_KNOWN_RESPONSE
    informational = []
    while True:
        status = r.varint()
        if 100 <= status <= 199:
            # Interim (1xx) responses carry only a header section.
            informational.append((status, _decode_fields(r, known)))
            continue
        if not 200 <= status <= 599:
            raise InteropError(f"binary HTTP response: invalid final status {status}")
        break
    resp = BhttpResponse(status, informational=informational)
    if not r.at_end():
        resp.headers = _decode_fields(r, known)
    if not r.at_end():
        resp.content = _decode_content(r, known)
    if not r.at_end():
        resp.trailers = _decode_fields(r, known)
    _check_padding(r)
    return resp


# ---------------------------------------------------------------------------
# Key configuration (RFC 9458 section 3)
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyConfig:
    key_id: int
    kem_id: int
    public_key: bytes
    suites: tuple[tuple[int, int], ...]  # (kdf_id, aead_id) pairs, server's order

    def encode(self) -> bytes:
        algs = b"".join(kdf.to_bytes(2, "big") + aead.to_bytes(2, "big") for kdf, aead in self.suites)
        return (
            bytes([self.key_id])
            + self.kem_id.to_bytes(2, "big")
            + self.public_key
            + len(algs).to_bytes(2, "big")
            + algs
        )

    def describe(self) -> str:
        kem = KEMS.get(self.kem_id, (f"KEM 0x{self.kem_id:04x}",))[0]
        suites = ", ".join(
            f"{KDFS.get(k, (f'KDF 0x{k:04x}',))[0]}/{AEADS[a].name if a in AEADS else f'AEAD 0x{a:04x}'}"
            for k, a in self.suites
        )
        return f"key_id {self.key_id}, {kem}, [{suites}]"


def parse_key_config(data: bytes) -> KeyConfig:
    """One key configuration, which must use exactly all of `data`."""
    r = Reader(data, "key configuration")
    key_id = r.uint(1)
    kem_id = r.uint(2)
    if kem_id not in KEMS:
        raise InteropError(f"key configuration {key_id}: unknown KEM 0x{kem_id:04x}")
    public_key = r.take(KEMS[kem_id][1])
    algs_len = r.uint(2)
    # At least one pair; a whole number of 4-byte (KDF, AEAD) pairs.
    if algs_len < 4 or algs_len % 4:
        raise InteropError(f"key configuration {key_id}: bad symmetric algorithms length {algs_len}")
    algs = Reader(r.take(algs_len), "symmetric algorithms")
    suites = tuple((algs.uint(2), algs.uint(2)) for _ in range(algs_len // 4))
    if not r.at_end():
        raise InteropError(f"key configuration {key_id}: {r.remaining()} unexpected trailing bytes")
    return KeyConfig(key_id, kem_id, public_key, suites)


def parse_key_config_list(data: bytes) -> tuple[list[KeyConfig], list[str]]:
    """`application/ohttp-keys` (section 3.2): 2-byte-length-prefixed configs.

    A configuration with a KEM this client does not know is skipped (its
    length prefix says where the next one starts) and reported; any other
    encoding error rejects the whole list, as section 3.2 asks of clients.
    """
    r = Reader(data, "application/ohttp-keys")
    if r.at_end():
        raise InteropError("application/ohttp-keys: empty body")
    configs, skipped = [], []
    while not r.at_end():
        body = r.take(r.uint(2))
        if len(body) >= 3 and int.from_bytes(body[1:3], "big") not in KEMS:
            skipped.append(f"key_id {body[0]} with unknown KEM 0x{int.from_bytes(body[1:3], 'big'):04x}")
            continue
        configs.append(parse_key_config(body))
    return configs, skipped


def choose_config(configs: list[KeyConfig], aead_id: int) -> KeyConfig:
    """First configuration offering X25519 + HKDF-SHA256 + the chosen AEAD."""
    for cfg in configs:
        if cfg.kem_id == KEM_X25519 and (KDF_HKDF_SHA256, aead_id) in cfg.suites:
            return cfg
    offered = "; ".join(c.describe() for c in configs) or "none"
    raise InteropError(
        f"no key configuration offers X25519/HKDF-SHA256/{AEADS[aead_id].name} (offered: {offered})"
    )


# ---------------------------------------------------------------------------
# Oblivious HTTP encapsulation (RFC 9458 sections 4.3 and 4.4)
# ---------------------------------------------------------------------------


def request_header(key_id: int, kem_id: int, kdf_id: int, aead_id: int) -> bytes:
    return bytes([key_id]) + kem_id.to_bytes(2, "big") + kdf_id.to_bytes(2, "big") + aead_id.to_bytes(2, "big")


def request_info(hdr: bytes) -> bytes:
    return REQUEST_LABEL + b"\x00" + hdr


def hpke_suite(kem_id: int, kdf_id: int, aead_id: int) -> CipherSuite:
    return CipherSuite.new(KEMId(kem_id), KDFId(kdf_id), AEADId(aead_id))


@dataclass
class ResponseKeys:
    """Intermediate values of section 4.4, kept so the self-test can show them."""

    secret: bytes
    salt: bytes
    prk: bytes
    key: bytes
    nonce: bytes


def derive_response_keys(hpke_context, enc: bytes, kdf_id: int, aead: Aead, response_nonce: bytes) -> ResponseKeys:
    """RFC 9458 section 4.4 key schedule (the same on both sides).

    Plain HKDF Extract/Expand of the negotiated KDF, not HPKE's labelled
    versions: the RFC uses the KDF's Extract and Expand functions directly.
    """
    algorithm = KDFS[kdf_id][1]
    secret = hpke_context.export(RESPONSE_LABEL, max(aead.nn, aead.nk))
    salt = enc + response_nonce
    mac = hmac.HMAC(salt, algorithm())  # HKDF-Extract(salt, IKM) = HMAC(salt, IKM)
    mac.update(secret)
    prk = mac.finalize()
    key = HKDFExpand(algorithm(), aead.nk, b"key").derive(prk)
    nonce = HKDFExpand(algorithm(), aead.nn, b"nonce").derive(prk)
    return ResponseKeys(secret, salt, prk, key, nonce)


@dataclass
class PendingResponse:
    """What the client must remember to open the matching response."""

    hpke_context: object
    enc: bytes
    kdf_id: int
    aead: Aead

    def open(self, enc_response: bytes) -> bytes:
        n = max(self.aead.nn, self.aead.nk)
        # The shortest valid response is the nonce plus the AEAD tag (16).
        if len(enc_response) < n + 16:
            raise InteropError(f"encapsulated response too short ({len(enc_response)} bytes)")
        response_nonce, ct = enc_response[:n], enc_response[n:]
        keys = derive_response_keys(self.hpke_context, self.enc, self.kdf_id, self.aead, response_nonce)
        try:
            return self.aead.open(keys.key, keys.nonce, ct)
        except InvalidTag:
            raise InteropError("encapsulated response failed AEAD authentication") from None


def encapsulate_request(
    cfg: KeyConfig, kdf_id: int, aead_id: int, request: bytes, ephemeral_private_key: bytes | None = None
) -> tuple[bytes, PendingResponse]:
    """Section 4.3: hdr || enc || Seal(info = label || 0 || hdr, aad = "").

    ephemeral_private_key fixes the sender's ephemeral key, which only the
    self-test should do (to reproduce Appendix A byte for byte).
    """
    if cfg.kem_id != KEM_X25519:
        raise InteropError("this client only encapsulates to X25519 keys")
    if (kdf_id, aead_id) not in cfg.suites:
        raise InteropError(f"key configuration {cfg.key_id} does not offer KDF {kdf_id}/AEAD {aead_id}")
    hdr = request_header(cfg.key_id, cfg.kem_id, kdf_id, aead_id)
    suite = hpke_suite(cfg.kem_id, kdf_id, aead_id)
    pk_r = suite.kem.deserialize_public_key(cfg.public_key)
    eks = None
    if ephemeral_private_key is not None:
        pk_e = X25519PrivateKey.from_private_bytes(ephemeral_private_key).public_key().public_bytes_raw()
        eks = KEMKeyPair(
            suite.kem.deserialize_private_key(ephemeral_private_key), suite.kem.deserialize_public_key(pk_e)
        )
    enc, ctx = suite.create_sender_context(pk_r, info=request_info(hdr), eks=eks)
    ct = ctx.seal(request)
    return hdr + enc + ct, PendingResponse(ctx, enc, kdf_id, AEADS[aead_id])


# The gateway side, for the self-test only: it lets the Appendix A example be
# checked in both directions and the client be round-tripped with fresh keys.


@dataclass
class GatewayRequest:
    request: bytes
    hpke_context: object
    enc: bytes
    kdf_id: int
    aead: Aead

    def encapsulate_response(self, response: bytes, response_nonce: bytes | None = None) -> bytes:
        n = max(self.aead.nn, self.aead.nk)
        response_nonce = os.urandom(n) if response_nonce is None else response_nonce
        assert len(response_nonce) == n
        keys = derive_response_keys(self.hpke_context, self.enc, self.kdf_id, self.aead, response_nonce)
        return response_nonce + self.aead.seal(keys.key, keys.nonce, response)


def gateway_decapsulate_request(cfg: KeyConfig, private_key: bytes, enc_request: bytes) -> GatewayRequest:
    r = Reader(enc_request, "encapsulated request")
    key_id, kem_id, kdf_id, aead_id = r.uint(1), r.uint(2), r.uint(2), r.uint(2)
    if key_id != cfg.key_id or kem_id != cfg.kem_id or (kdf_id, aead_id) not in cfg.suites:
        raise InteropError("encapsulated request does not match the key configuration")
    enc = r.take(X25519_NENC)
    suite = hpke_suite(kem_id, kdf_id, aead_id)
    info = request_info(request_header(key_id, kem_id, kdf_id, aead_id))
    ctx = suite.create_recipient_context(enc, suite.kem.deserialize_private_key(private_key), info=info)
    request = ctx.open(r.take(r.remaining()))
    return GatewayRequest(request, ctx, enc, kdf_id, AEADS[aead_id])


# ---------------------------------------------------------------------------
# Self-test against RFC 9458 Appendix A (and RFC 9000 varint examples)
# ---------------------------------------------------------------------------


class SelfTest:
    def __init__(self, verbose: bool):
        self.verbose = verbose
        self.failures: list[str] = []
        self.passed = 0
        self.last = None  # names the step if a later one raises

    def check(self, name: str, got, want) -> None:
        self.last = name
        if got == want:
            self.passed += 1
            if self.verbose:
                print(f"  ok    {name}")
        else:
            show = lambda v: v.hex() if isinstance(v, (bytes, bytearray)) else repr(v)  # noqa: E731
            self.failures.append(name)
            print(f"  FAIL  {name}\n        got  {show(got)}\n        want {show(want)}")

    def raises(self, name: str, fn) -> None:
        try:
            fn()
        except (InteropError, ValueError):
            self.check(name, True, True)
        else:
            self.check(name, "no error", "an error")


def run_self_test(vectors_path: Path, verbose: bool, quiet: bool = False) -> bool:
    t = SelfTest(verbose)
    try:
        ok = _self_test(t, vectors_path)
        if ok and not quiet:
            print(
                f"self-test passed: {t.passed} checks against RFC 9458 Appendix A "
                "(client encapsulation byte for byte)"
            )
        return ok
    except Exception as err:  # a crash is a failed self-test, not a traceback
        print(f"self-test FAILED with {type(err).__name__}: {err} (after check {t.last!r})")
        return False


def _self_test(t: SelfTest, vectors_path: Path) -> bool:
    verbose = t.verbose
    v = json.loads(vectors_path.read_text())
    h = {k: bytes.fromhex(val) for k, val in v.items() if isinstance(val, str) and k != "source"}
    if verbose:
        print(f"self-test: RFC 9458 Appendix A from {vectors_path}")

    # RFC 9000 Appendix A.1 sample varints, including a non-minimal encoding.
    minimal = (("c2197c5eff14e88c", 151288809941952652), ("9d7f3e7d", 494878333), ("7bbd", 15293), ("25", 37))
    for hexstr, value in minimal + (("4025", 37),):
        t.check(f"varint decode {hexstr}", Reader(bytes.fromhex(hexstr), "varint").varint(), value)
    for hexstr, value in minimal:
        t.check(f"varint encode {value}", encode_varint(value).hex(), hexstr)

    # Key configuration: fields, public key belongs to the RFC's private key,
    # re-encoding is exact, and the application/ohttp-keys list form parses.
    suite_v = v["suite"]
    kdf_id, aead_id = suite_v["kdf_id"], suite_v["aead_id"]
    cfg = parse_key_config(h["key_config"])
    t.check("key config: key_id", cfg.key_id, 1)
    t.check("key config: kem_id", cfg.kem_id, suite_v["kem_id"])
    t.check("key config: symmetric suites", cfg.suites, ((0x0001, 0x0001), (0x0001, 0x0003)))
    pk_r = X25519PrivateKey.from_private_bytes(h["server_private_key"]).public_key().public_bytes_raw()
    t.check("key config: public key matches server private key", cfg.public_key, pk_r)
    t.check("key config: re-encodes byte for byte", cfg.encode(), h["key_config"])
    listed = len(h["key_config"]).to_bytes(2, "big") + h["key_config"]
    t.check("ohttp-keys list: parses", parse_key_config_list(listed * 2), ([cfg, cfg], []))
    t.check("ohttp-keys list: chooses the AES-128-GCM suite", choose_config([cfg], aead_id), cfg)
    t.raises("ohttp-keys list: truncated list rejected", lambda: parse_key_config_list(listed[:-1]))
    t.raises("key config: trailing byte rejected", lambda: parse_key_config(h["key_config"] + b"\x00"))

    # Binary HTTP: the RFC's request and response messages.
    req = decode_request(h["request"])
    t.check("bhttp request: decodes", req, BhttpRequest(b"GET", b"https", b"example.com", b"/"))
    t.check("bhttp request: encodes (truncated form)", encode_request(req, truncate=True), h["request"])
    t.check("bhttp request: full form round-trips", decode_request(encode_request(req)), req)
    t.check("bhttp response: decodes to 200", decode_response(h["response"]), BhttpResponse(200))

    # Section 4.3, gateway direction: the RFC's encapsulated request opens
    # with the server private key to the RFC's request.
    hdr = request_header(cfg.key_id, cfg.kem_id, kdf_id, aead_id)
    t.check("info = label || 0 || hdr", request_info(hdr), h["info"])
    gw = gateway_decapsulate_request(cfg, h["server_private_key"], h["encapsulated_request"])
    t.check("gateway decapsulates RFC encapsulated request", gw.request, h["request"])

    # Section 4.3, client direction: with the RFC's ephemeral key fixed, the
    # client's encapsulated request is the RFC's, byte for byte.
    pk_e = X25519PrivateKey.from_private_bytes(h["ephemeral_private_key"]).public_key().public_bytes_raw()
    t.check("ephemeral public key", pk_e, h["ephemeral_public_key"])
    enc_request, pending = encapsulate_request(
        cfg, kdf_id, aead_id, h["request"], ephemeral_private_key=h["ephemeral_private_key"]
    )
    t.check("client encapsulated request (fixed ephemeral key)", enc_request, h["encapsulated_request"])

    # Section 4.4 key schedule: every intermediate value, from both contexts.
    aead = AEADS[aead_id]
    for side, ctx in (("client", pending.hpke_context), ("gateway", gw.hpke_context)):
        keys = derive_response_keys(ctx, h["ephemeral_public_key"], kdf_id, aead, h["response_nonce"])
        t.check(f"{side}: exported secret", keys.secret, h["exported_secret"])
        t.check(f"{side}: salt", keys.salt, h["salt"])
        t.check(f"{side}: prk", keys.prk, h["prk"])
        t.check(f"{side}: aead key", keys.key, h["aead_key"])
        t.check(f"{side}: aead nonce", keys.nonce, h["aead_nonce"])

    # Section 4.4 both ways.
    t.check(
        "gateway encapsulates RFC response with RFC nonce",
        gw.encapsulate_response(h["response"], h["response_nonce"]),
        h["encapsulated_response"],
    )
    t.check("client opens RFC encapsulated response", pending.open(h["encapsulated_response"]), h["response"])
    tampered = bytearray(h["encapsulated_response"])
    tampered[-1] ^= 1
    t.raises("client rejects a tampered response", lambda: pending.open(bytes(tampered)))
    t.raises("client rejects a truncated response", lambda: pending.open(h["encapsulated_response"][:20]))

    # Beyond the appendix: fresh keys for every AEAD this client offers, with
    # a request and response shaped like the real inference exchange
    # (headers, content, an informational response).
    for aead_x in AEADS.values():
        sk = X25519PrivateKey.generate()
        cfg_x = KeyConfig(7, KEM_X25519, sk.public_key().public_bytes_raw(), ((KDF_HKDF_SHA256, aead_x.aead_id),))
        inner = BhttpRequest(
            b"POST", b"https", b"gateway.test", b"/v2/models/m/infer",
            [(b"content-type", b"application/json")], b'{"inputs":[]}',
        )
        enc_req, pend = encapsulate_request(cfg_x, KDF_HKDF_SHA256, aead_x.aead_id, encode_request(inner))
        gw_x = gateway_decapsulate_request(cfg_x, sk.private_bytes_raw(), enc_req)
        t.check(f"round trip {aead_x.name}: request", decode_request(gw_x.request), inner)
        answer = BhttpResponse(
            200,
            [(b"content-type", b"application/json")],
            b'{"outputs":[]}',
            informational=[(103, [(b"link", b"</x>")])],
        )
        answer_bytes = encode_response(answer)
        enc_resp = gw_x.encapsulate_response(answer_bytes)
        # Encapsulated response = nonce || ciphertext || 16-byte tag.
        nonce_len = len(enc_resp) - len(answer_bytes) - 16
        t.check(f"round trip {aead_x.name}: response nonce length", nonce_len, max(aead_x.nn, aead_x.nk))
        t.check(f"round trip {aead_x.name}: response", decode_response(pend.open(enc_resp)), answer)

    # Indeterminate-length response (framing 3) with padding, hand-built from
    # RFC 9292 section 3.5: a gateway may legitimately send this form.
    indeterminate = (
        encode_varint(3) + encode_varint(200)
        + encode_vbytes(b"content-type") + encode_vbytes(b"text/plain") + b"\x00"
        + encode_vbytes(b"he") + encode_vbytes(b"llo") + b"\x00"
        + b"\x00" + b"\x00\x00\x00"
    )
    t.check(
        "bhttp indeterminate-length response with padding",
        decode_response(indeterminate),
        BhttpResponse(200, [(b"content-type", b"text/plain")], b"hello"),
    )
    full_200 = encode_response(BhttpResponse(200))
    t.check("bhttp response: zero padding accepted", decode_response(full_200 + b"\x00" * 5), BhttpResponse(200))
    t.raises("bhttp response: non-zero padding rejected", lambda: decode_response(full_200 + b"\x00\x01"))

    total = t.passed + len(t.failures)
    if t.failures:
        print(f"self-test FAILED: {len(t.failures)} of {total} checks ({', '.join(t.failures)})")
        return False
    return True


# ---------------------------------------------------------------------------
# Talking to the gateway
# ---------------------------------------------------------------------------


def media_type(value: str | None) -> str:
    return (value or "").split(";", 1)[0].strip().lower()


class Gateway:
    def __init__(self, url: str, ca_file: str, timeout: float):
        u = urlsplit(url)
        if u.scheme != "https" or not u.hostname:
            raise InteropError(f"--url must be https://host[:port], got {url!r}")
        if u.path not in ("", "/"):
            raise InteropError("--url must not have a path; the gateway resource is /.well-known/ohttp-gateway")
        self.host = u.hostname
        self.port = u.port or 443
        self.netloc = u.netloc
        self.timeout = timeout
        # Trust exactly the given CA (no system store), check the host name /
        # IP against the certificate, and refuse anything below TLS 1.3.
        self.tls = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca_file)
        self.tls.minimum_version = ssl.TLSVersion.TLSv1_3
        self.tls.set_alpn_protocols(["http/1.1"])
        self.tls_version = None

    def _exchange(self, method: str, path: str, headers: dict, body: bytes | None = None):
        """One HTTPS exchange; returns (status, media type, body)."""
        # A fresh connection per exchange keeps failures independent.
        conn = http.client.HTTPSConnection(self.host, self.port, context=self.tls, timeout=self.timeout)
        try:
            conn.request(method, path, body=body, headers=headers)
            # Read the TLS version now: http.client drops the socket once a
            # "Connection: close" response has been read.
            self.tls_version = conn.sock.version()
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, media_type(resp.getheader("content-type")), data
        except (OSError, http.client.HTTPException) as err:
            raise InteropError(f"{method} {path}: {type(err).__name__}: {err}") from None
        finally:
            conn.close()

    def fetch_key_configs(self) -> bytes:
        status, ctype, body = self._exchange("GET", GATEWAY_PATH, {"accept": KEYS_MEDIA_TYPE})
        if status != 200:
            raise InteropError(f"GET {GATEWAY_PATH}: status {status}: {body[:200]!r}")
        if ctype != KEYS_MEDIA_TYPE:
            raise InteropError(f"GET {GATEWAY_PATH}: content type {ctype!r}, expected {KEYS_MEDIA_TYPE}")
        return body

    def post_encapsulated(self, enc_request: bytes) -> bytes:
        status, ctype, body = self._exchange(
            "POST",
            GATEWAY_PATH,
            {"content-type": REQUEST_MEDIA_TYPE, "accept": RESPONSE_MEDIA_TYPE},
            enc_request,
        )
        if status != 200:
            raise InteropError(f"POST {GATEWAY_PATH}: status {status}: {body[:200]!r}")
        if ctype != RESPONSE_MEDIA_TYPE:
            raise InteropError(f"POST {GATEWAY_PATH}: content type {ctype!r}, expected {RESPONSE_MEDIA_TYPE}")
        return body


# ---------------------------------------------------------------------------
# KServe V2 inference and the onnxruntime reference
# ---------------------------------------------------------------------------


def load_input(path: Path):
    import numpy as np

    raw = path.read_bytes()
    doc = json.loads(raw)
    inputs = doc.get("inputs") or []
    if len(inputs) != 1 or inputs[0].get("datatype") != "FP32":
        raise InteropError(f"{path}: expected one FP32 input tensor")
    t = inputs[0]
    array = np.asarray(t["data"], dtype=np.float32).reshape(t["shape"])
    return raw, t["name"], array


def reference_outputs(onnx_path: Path, input_name: str, array):
    import onnxruntime as ort

    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    label, proba = sess.run(["label", "probabilities"], {input_name: array})
    return label, proba


def compare_outputs(body: bytes, model: str, rows: int, ref_label, ref_proba) -> tuple[list[int], float]:
    import numpy as np

    try:
        doc = json.loads(body)
    except ValueError as err:
        raise InteropError(f"inner response is not JSON ({err}): {body[:200]!r}") from None
    if doc.get("model_name") != model:
        raise InteropError(f"model_name is {doc.get('model_name')!r}, expected {model!r}")
    outputs = {o.get("name"): o for o in doc.get("outputs") or []}
    for name, dtype, shape in (("label", "INT64", [rows]), ("probabilities", "FP32", [rows, 2])):
        o = outputs.get(name)
        if o is None:
            raise InteropError(f"output {name!r} missing (got {sorted(map(str, outputs))})")
        if o.get("datatype") != dtype or o.get("shape") != shape:
            raise InteropError(
                f"output {name!r}: datatype {o.get('datatype')} shape {o.get('shape')}, expected {dtype} {shape}"
            )
    # KServe V2 allows nested or flat data; flatten before comparing.
    label = np.asarray(outputs["label"]["data"]).reshape(-1)
    proba = np.asarray(outputs["probabilities"]["data"], dtype=np.float64).reshape(rows, 2)
    if label.dtype.kind not in "iu":
        raise InteropError(f"label data are not integers: {outputs['label']['data']!r}")
    if not np.array_equal(label, ref_label.astype(np.int64)):
        raise InteropError(f"labels differ: gateway {label.tolist()}, onnxruntime {ref_label.tolist()}")
    diff = float(np.max(np.abs(proba - ref_proba.astype(np.float64))))
    if not diff <= PROBABILITY_TOLERANCE:  # also catches NaN
        raise InteropError(
            f"probabilities differ by {diff:.3e} > {PROBABILITY_TOLERANCE}: "
            f"gateway {proba.tolist()}, onnxruntime {ref_proba.tolist()}"
        )
    return label.tolist(), diff


def run_check(args) -> None:
    aead = AEAD_BY_CLI_NAME[args.aead]
    raw_input, input_name, array = load_input(args.input)
    ref_label, ref_proba = reference_outputs(args.onnx, input_name, array)
    rows = array.shape[0]

    gateway = Gateway(args.url, args.ca, args.timeout)
    configs, skipped = parse_key_config_list(gateway.fetch_key_configs())
    for s in skipped:
        print(f"note: skipped key configuration {s}", file=sys.stderr)
    cfg = choose_config(configs, aead.aead_id)

    # The client's time inside the encryption (RFC 9458 section 6.5): the gateway refuses a
    # request whose Date is outside its replay window, or missing.
    headers = [(b"content-type", b"application/json"), (b"date", formatdate(usegmt=True).encode())]
    if args.token_file is not None:
        # The bearer token travels only inside the encryption (RFC 6750 section 2.1).
        token = args.token_file.read_text().strip().encode()
        headers.append((b"authorization", b"Bearer " + token))
    inner = BhttpRequest(
        method=b"POST",
        scheme=b"https",
        authority=(args.authority or gateway.netloc).encode(),
        path=f"/v2/models/{args.model}/infer".encode(),
        headers=headers,
        content=raw_input,
    )
    enc_request, pending = encapsulate_request(cfg, KDF_HKDF_SHA256, aead.aead_id, encode_request(inner))
    enc_response = gateway.post_encapsulated(enc_request)
    resp = decode_response(pending.open(enc_response))
    if resp.status != 200:
        raise InteropError(f"inner response status {resp.status}: {resp.content[:300]!r}")
    ctype = media_type(resp.header("content-type"))
    if ctype and ctype != "application/json":
        raise InteropError(f"inner response content type {ctype!r}, expected application/json")
    labels, diff = compare_outputs(resp.content, args.model, rows, ref_label, ref_proba)

    model_sha = hashlib.sha256(args.onnx.read_bytes()).hexdigest()[:12]
    print(
        f"OK {args.model} via {args.url} ({gateway.tls_version}, key_id {cfg.key_id}, "
        f"X25519/HKDF-SHA256/{aead.name}): {rows} rows, labels {labels} match onnxruntime, "
        f"max |dp| {diff:.1e} <= {PROBABILITY_TOLERANCE:g} (model sha256 {model_sha}...)"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description="Independent OHTTP (RFC 9458) client: checks the Sealgate gateway against onnxruntime.",
    )
    ap.add_argument("--self-test", action="store_true", help="only check this client against RFC 9458 Appendix A")
    ap.add_argument("--vectors", type=Path, default=DEFAULT_VECTORS, help="RFC 9458 Appendix A values (JSON)")
    ap.add_argument("--url", help="gateway base URL, e.g. https://127.0.0.1:8443")
    ap.add_argument("--ca", help="PEM file of the CA that signed the gateway's TLS certificate")
    ap.add_argument("--aead", choices=sorted(AEAD_BY_CLI_NAME), default="aes128gcm")
    ap.add_argument("--model", help="model name in /v2/models/{model}/infer")
    ap.add_argument("--onnx", type=Path, help="the same .onnx file the gateway serves, for the reference run")
    ap.add_argument("--input", type=Path, help="KServe V2 JSON request body")
    ap.add_argument("--authority", help="authority of the inner request (default: host:port of --url)")
    ap.add_argument("--timeout", type=float, default=30.0, help="seconds per HTTP exchange")
    ap.add_argument("--token-file", type=Path, help="file holding the bearer token (sent inside the encryption)")
    ap.add_argument("-v", "--verbose", action="store_true", help="list every self-test check")
    args = ap.parse_args(argv)

    if not args.self_test:
        missing = [f"--{n}" for n in ("url", "ca", "model", "onnx", "input") if getattr(args, n) is None]
        if missing:
            ap.error(f"missing {', '.join(missing)} (or use --self-test)")

    # Always verify the implementation first; never talk to a server with a
    # client that does not reproduce the RFC.
    # In a server check it stays silent unless it fails, so a pass prints
    # just the one summary line.
    if not run_self_test(args.vectors, args.verbose or args.self_test, quiet=not args.self_test):
        return EXIT_SELF_TEST
    if args.self_test:
        return EXIT_OK

    try:
        run_check(args)
    except InteropError as err:
        print(f"FAIL: {err}", file=sys.stderr)
        return EXIT_MISMATCH
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
