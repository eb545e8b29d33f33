#!/usr/bin/env python3
"""Independent reader of ratls-quic certificates, written from docs/evidence.md and
docs/binding.md only.

Usage: check_cert.py CERT.der [--peer-id HEX]

Checks that the certificate is a self-signed Ed25519 X.509 certificate, decodes the evidence
extension (OID 2.23.133.5.4.9, CBOR tag 60000), reads report_data from the TD report of the
quote it carries, and compares it with the report_data recomputed from the certificate (purpose
`cert`: SPKI, validity, PeerId). It does NOT verify the quote's signature, PCK chain or TCB
status: that needs DCAP collateral and is a quote verifier's job.

Prints one JSON object on stdout. Exit status: 0 when every check passes, 1 when the
certificate is readable but a check fails, 2 when the input cannot be read as a certificate
carrying evidence in the documented format.
"""

import argparse
import hashlib
import hmac
import io
import json
import struct
import sys

import blake3
import cbor2
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

EVIDENCE_OID = x509.ObjectIdentifier("2.23.133.5.4.9")
INTEL_TEE_QUOTE_TAG = 60000
EVIDENCE_VERSION = 1
HASH_ALG_SHA256 = 1
LEVELS = {
    1: "TdxLocal",
    2: "TdxRemote",
    3: "TdxRaTlsBidirectional",
    4: "TdxPlusReproducibleBuild",
}

BINDING_CONTEXT = "ratls-quic report_data v1"
TAG_PURPOSE, TAG_SPKI, TAG_NOT_BEFORE, TAG_NOT_AFTER, TAG_PEER_ID = 0x01, 0x02, 0x03, 0x04, 0x05

# DCAP TDX quote layout (little-endian integers).
QUOTE_HEADER_LEN = 48
TEE_TYPE_TDX = 0x81
TD_REPORT_LEN = {2: 584, 3: 648}  # v5 body type -> TD report length (TD 1.0, TD 1.5)
REPORT_DATA_OFFSET_IN_TD_REPORT = 520
REPORT_DATA_LEN = 64


class Unreadable(Exception):
    """The input is not in the documented format (exit 2)."""


def is_uint(item):
    """A CBOR unsigned integer (bool is an int subclass in Python: refuse it)."""
    return type(item) is int and item >= 0


def cbor_decode_exact(data, what):
    """Decodes exactly one CBOR item filling `data` (cbor2.loads ignores trailing bytes)."""
    stream = io.BytesIO(data)
    try:
        item = cbor2.CBORDecoder(stream).decode()
    except Exception as exc:  # cbor2 raises several types for malformed input
        raise Unreadable(f"{what}: not CBOR ({exc})") from None
    if stream.tell() != len(data):
        raise Unreadable(f"{what}: {len(data) - stream.tell()} trailing bytes")
    return item


def decode_evidence(value):
    """extnValue content -> (quote, version, level, pubkey_hash)."""
    item = cbor_decode_exact(value, "evidence")
    if not isinstance(item, cbor2.CBORTag) or item.tag != INTEL_TEE_QUOTE_TAG:
        raise Unreadable(f"evidence is not CBOR tag {INTEL_TEE_QUOTE_TAG}")
    body = item.value
    if not isinstance(body, (list, tuple)) or len(body) != 2:
        raise Unreadable("evidence is not a 2-entry array")
    quote, claims_bytes = body
    if not isinstance(quote, bytes) or not isinstance(claims_bytes, bytes):
        raise Unreadable("quote and claims must be byte strings")
    if not quote:
        raise Unreadable("empty quote")
    claims = cbor_decode_exact(claims_bytes, "claims")
    if not isinstance(claims, dict) or set(claims) != {"ratls-quic", "pubkey-hash"}:
        raise Unreadable("claims map must hold exactly 'ratls-quic' and 'pubkey-hash'")
    for name in claims:
        if not isinstance(claims[name], bytes):
            raise Unreadable(f"claim {name} is not a byte string")

    ratls = cbor_decode_exact(claims["ratls-quic"], "ratls-quic claim")
    if not isinstance(ratls, (list, tuple)) or not ratls or not is_uint(ratls[0]):
        raise Unreadable("ratls-quic claim is not [version, level]")
    version = ratls[0]
    if version != EVIDENCE_VERSION:
        raise Unreadable(f"unknown evidence version {version}")
    if len(ratls) != 2 or not is_uint(ratls[1]):
        raise Unreadable("ratls-quic claim is not [version, level]")
    level = ratls[1]

    entry = cbor_decode_exact(claims["pubkey-hash"], "pubkey-hash claim")
    if not isinstance(entry, (list, tuple)) or len(entry) != 2:
        raise Unreadable("pubkey-hash is not a 2-entry hash-entry")
    alg, digest = entry
    if not is_uint(alg) or alg != HASH_ALG_SHA256 or not isinstance(digest, bytes) or len(digest) != 32:
        raise Unreadable("pubkey-hash is not a sha-256 (id 1) hash-entry of 32 bytes")
    return quote, version, level, digest


def quote_report_data(quote):
    """(quote version, report_data) from a DCAP TDX v4 or v5 quote, by its layout."""
    if len(quote) < QUOTE_HEADER_LEN:
        raise Unreadable(f"quote of {len(quote)} bytes is shorter than its header")
    version, _ak_type, tee_type = struct.unpack_from("<HHI", quote, 0)
    if tee_type != TEE_TYPE_TDX:
        raise Unreadable(f"quote TEE type {tee_type:#x} is not TDX")
    if version == 4:
        report_offset, report_len = QUOTE_HEADER_LEN, TD_REPORT_LEN[2]
    elif version == 5:
        if len(quote) < QUOTE_HEADER_LEN + 6:
            raise Unreadable("v5 quote ends in its body descriptor")
        body_type, body_size = struct.unpack_from("<HI", quote, QUOTE_HEADER_LEN)
        if body_type not in TD_REPORT_LEN or body_size != TD_REPORT_LEN[body_type]:
            raise Unreadable(f"v5 body type {body_type} of {body_size} bytes is not a TD report")
        report_offset, report_len = QUOTE_HEADER_LEN + 6, body_size
    else:
        raise Unreadable(f"quote version {version} is neither 4 nor 5")
    if len(quote) < report_offset + report_len:
        raise Unreadable("quote ends inside its TD report")
    start = report_offset + REPORT_DATA_OFFSET_IN_TD_REPORT
    return version, quote[start : start + REPORT_DATA_LEN]


def binding_field(tag, value):
    return bytes([tag]) + struct.pack(">I", len(value)) + value


def certificate_report_data(spki_der, not_before, not_after, peer_id):
    encoded = b"".join(
        [
            binding_field(TAG_PURPOSE, b"cert"),
            binding_field(TAG_SPKI, spki_der),
            binding_field(TAG_NOT_BEFORE, struct.pack(">Q", not_before)),
            binding_field(TAG_NOT_AFTER, struct.pack(">Q", not_after)),
            binding_field(TAG_PEER_ID, peer_id),
        ]
    )
    return blake3.blake3(encoded, derive_key_context=BINDING_CONTEXT).digest(length=64)


def check(der, expected_peer_id):
    """Returns (verdict dict, list of failed checks). Raises Unreadable."""
    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError as exc:
        raise Unreadable(f"not a DER X.509 certificate ({exc})") from None
    failures = []
    try:
        public_key = cert.public_key()
        sig_oid = cert.signature_algorithm_oid
    except Exception as exc:
        raise Unreadable(f"certificate key or algorithm unreadable ({exc})") from None

    ed25519 = isinstance(public_key, Ed25519PublicKey) and sig_oid == x509.SignatureAlgorithmOID.ED25519
    if not ed25519:
        failures.append("key or signature algorithm is not Ed25519")
    if cert.version != x509.Version.v3:
        failures.append("not an X.509 v3 certificate")
    self_issued = cert.issuer.public_bytes() == cert.subject.public_bytes()
    if not self_issued:
        failures.append("issuer differs from subject")

    signature_valid = False
    peer_id = None
    spki_der = b""
    if isinstance(public_key, Ed25519PublicKey):
        try:
            public_key.verify(cert.signature, cert.tbs_certificate_bytes)
            signature_valid = ed25519
        except InvalidSignature:
            pass
        peer_id = public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
        spki_der = public_key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
        # binding.md hashes the SPKI "as it appears in the certificate"; for Ed25519 the DER is
        # unique, so the re-encoding must be found verbatim in the signed part.
        if spki_der not in cert.tbs_certificate_bytes:
            failures.append("re-encoded SPKI not found in the certificate")
    if not signature_valid:
        failures.append("self-signature does not verify")

    not_before = int(cert.not_valid_before_utc.timestamp())
    not_after = int(cert.not_valid_after_utc.timestamp())

    try:
        extensions = cert.extensions
    except Exception as exc:  # duplicate or malformed extensions
        raise Unreadable(f"extensions unreadable ({exc})") from None
    try:
        ext = extensions.get_extension_for_oid(EVIDENCE_OID)
    except x509.ExtensionNotFound:
        ext = None

    verdict = {
        "peer_id": peer_id.hex() if peer_id else None,
        "not_before": not_before,
        "not_after": not_after,
        "signature_valid": signature_valid,
        "evidence_present": ext is not None,
        "evidence_version": None,
        "level": None,
        "quote_len": None,
        "quote_version": None,
        "report_data": None,
        "report_data_matches": False,
        "pubkey_hash_matches": False,
        "peer_id_matches": None,
    }
    if expected_peer_id is not None:
        verdict["peer_id_matches"] = peer_id == expected_peer_id
        if not verdict["peer_id_matches"]:
            failures.append("PeerId differs from the expected one")

    if ext is None:
        failures.append("no evidence extension (Software-level certificate)")
        return verdict, failures
    if ext.critical:
        failures.append("evidence extension is critical")
    quote, version, level, pubkey_hash = decode_evidence(ext.value.value)
    quote_version, actual = quote_report_data(quote)
    verdict.update(
        evidence_version=version,
        level=LEVELS.get(level, level),
        quote_len=len(quote),
        quote_version=quote_version,
        report_data=actual.hex(),
    )
    if level not in LEVELS:
        failures.append(f"unknown level code {level}")

    verdict["pubkey_hash_matches"] = hmac.compare_digest(
        hashlib.sha256(spki_der).digest(), pubkey_hash
    )
    if not verdict["pubkey_hash_matches"]:
        failures.append("pubkey-hash is not the SHA-256 of the SPKI")

    if peer_id and spki_der and 0 < not_before < not_after:
        expected = certificate_report_data(spki_der, not_before, not_after, peer_id)
        verdict["report_data_matches"] = hmac.compare_digest(expected, actual)
    if not verdict["report_data_matches"]:
        failures.append("report_data does not bind this certificate")
    return verdict, failures


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("cert", help="DER certificate file")
    parser.add_argument("--peer-id", help="expected PeerId, 64 hex digits")
    args = parser.parse_args(argv)

    expected = None
    if args.peer_id is not None:
        try:
            expected = bytes.fromhex(args.peer_id)
        except ValueError:
            expected = b""
        if len(expected) != 32:
            print(json.dumps({"ok": False, "error": "--peer-id is not 64 hex digits"}))
            return 2
    try:
        with open(args.cert, "rb") as f:
            der = f.read()
        verdict, failures = check(der, expected)
    except (OSError, Unreadable) as exc:
        print(json.dumps({"ok": False, "error": str(exc)}))
        return 2
    verdict["ok"] = not failures
    verdict["failures"] = failures
    print(json.dumps(verdict, indent=2))
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
