#!/usr/bin/env python3
"""Independent checker of ratls-quic bond proof messages, written from docs/binding.md and
docs/transport.md only.

Usage: check_bond.py MESSAGE --role client|server --client HEX --server HEX --exporter HEX

MESSAGE is the whole content of the bond-proof stream as it came off the wire: version 1
(`RQB1`, a single proof) or version 2 (`RQB2`, a batched proof). The other arguments are the
verifier's own view of the connection: the role of the side that sent the proof, the dialer's
and the acceptor's PeerIds and the connection's TLS exporter. The checker reads report_data from
the TD report of the quote, recomputes the bond input, and compares: for a single proof the
report_data v1 of the bond; for a batched proof the leaf hash, the audit path climbed to a root,
and the report_data v2 of (root, leaf count). It does NOT verify the quote's signature: that
needs DCAP collateral and is a quote verifier's job.

Prints one JSON object on stdout. Exit status: 0 when the proof binds this connection, 1 when
it is readable but does not, 2 when it cannot be read in the documented format.
"""

import argparse
import hmac
import json
import os
import struct
import sys

import blake3

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check_cert import Unreadable, binding_field, quote_report_data  # noqa: E402

BINDING_CONTEXT_V1 = "ratls-quic report_data v1"
BINDING_CONTEXT_V2 = "ratls-quic report_data v2"
NODE_CONTEXT = "ratls-quic bond batch v1"
TAG_PURPOSE, TAG_ROLE, TAG_CLIENT, TAG_SERVER, TAG_EXPORTER = 0x01, 0x10, 0x11, 0x12, 0x13
TAG_LEAF_COUNT, TAG_ROOT = 0x20, 0x21
MAX_QUOTE_LEN = 8192
MAX_LEAVES = 1024
MAX_PATH = 10


def bond_input(role, client, server, exporter):
    """The bond input of docs/binding.md (purpose `bond`): the leaf input of a batch."""
    return b"".join(
        [
            binding_field(TAG_PURPOSE, b"bond"),
            binding_field(TAG_ROLE, role.encode("ascii")),
            binding_field(TAG_CLIENT, client),
            binding_field(TAG_SERVER, server),
            binding_field(TAG_EXPORTER, exporter),
        ]
    )


def node_hash(data):
    return blake3.blake3(data, derive_key_context=NODE_CONTEXT).digest(length=32)


def leaf_hash(encoded):
    return node_hash(b"\x00" + encoded)


def inner(left, right):
    return node_hash(b"\x01" + left + right)


def split(n):
    """The largest power of two below n (n >= 2)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def path_length(index, count):
    length = 0
    while count > 1:
        k = split(count)
        if index < k:
            count = k
        else:
            index, count = index - k, count - k
        length += 1
    return length


def climb(leaf, index, count, path):
    """RFC 9162 recursion, as written in docs/binding.md: the last path element is the top."""
    if count == 1:
        return leaf
    sibling, rest = path[-1], path[:-1]
    k = split(count)
    if index < k:
        return inner(climb(leaf, index, k, rest), sibling)
    return inner(sibling, climb(leaf, index - k, count - k, rest))


def batch_report_data(root, count):
    encoded = b"".join(
        [
            binding_field(TAG_PURPOSE, b"bond-batch"),
            binding_field(TAG_LEAF_COUNT, struct.pack(">Q", count)),
            binding_field(TAG_ROOT, root),
        ]
    )
    return blake3.blake3(encoded, derive_key_context=BINDING_CONTEXT_V2).digest(length=64)


def take(data, at, n, what):
    if at + n > len(data):
        raise Unreadable(f"message ends inside the {what}")
    return data[at : at + n], at + n


def parse(message):
    """(version, quote, (index, count, path) or None). Raises Unreadable."""
    magic, at = take(message, 0, 4, "magic")
    kind, at = take(message, at, 1, "kind")
    if magic == b"RQB1":
        if kind == b"\x00":
            raise Unreadable("an empty proof (kind 0) carries no quote")
        if kind != b"\x01":
            raise Unreadable(f"unknown version 1 kind {kind.hex()}")
    elif magic == b"RQB2":
        if kind != b"\x02":
            raise Unreadable(f"unknown version 2 kind {kind.hex()}")
    else:
        raise Unreadable(f"bad magic {magic.hex()}")
    raw_len, at = take(message, at, 4, "quote length")
    (quote_len,) = struct.unpack(">I", raw_len)
    if quote_len == 0 or quote_len > MAX_QUOTE_LEN:
        raise Unreadable(f"quote length {quote_len} out of range")
    quote, at = take(message, at, quote_len, "quote")
    if magic == b"RQB1":
        if at != len(message):
            raise Unreadable("bytes after the quote")
        return 1, quote, None
    raw, at = take(message, at, 9, "leaf position")
    index, count, path_len = struct.unpack(">IIB", raw)
    if path_len > MAX_PATH:
        raise Unreadable(f"audit path of {path_len} hashes")
    if len(message) - at != 32 * path_len:
        raise Unreadable("audit path length does not match the bytes that follow")
    path = [message[at + 32 * i : at + 32 * (i + 1)] for i in range(path_len)]
    return 2, quote, (index, count, path)


def check(message, role, client, server, exporter):
    """Returns (verdict dict, list of failed checks). Raises Unreadable."""
    version, quote, position = parse(message)
    quote_version, actual = quote_report_data(quote)
    encoded = bond_input(role, client, server, exporter)
    verdict = {
        "message_version": version,
        "quote_version": quote_version,
        "report_data": actual.hex(),
    }
    failures = []
    if position is None:
        expected = blake3.blake3(encoded, derive_key_context=BINDING_CONTEXT_V1).digest(length=64)
    else:
        index, count, path = position
        verdict.update({"leaf_index": index, "leaf_count": count, "path_len": len(path)})
        if not 1 <= count <= MAX_LEAVES or index >= count:
            raise Unreadable(f"leaf {index} of {count} is not a position in a batch")
        if len(path) != path_length(index, count):
            raise Unreadable(
                f"audit path of {len(path)} hashes, leaf {index} of {count} needs "
                f"{path_length(index, count)}"
            )
        leaf = leaf_hash(encoded)
        root = climb(leaf, index, count, path)
        verdict.update({"leaf": leaf.hex(), "root": root.hex()})
        expected = batch_report_data(root, count)
    verdict["expected_report_data"] = expected.hex()
    if not hmac.compare_digest(expected, actual):
        failures.append("report_data does not bind this connection")
    return verdict, failures


def hex_arg(text, length, name):
    try:
        value = bytes.fromhex(text)
    except ValueError:
        value = b""
    if len(value) not in length:
        raise Unreadable(f"--{name} is not {' or '.join(str(2 * n) for n in length)} hex digits")
    return value


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("message", help="bond proof message file")
    parser.add_argument("--role", choices=["client", "server"], required=True)
    parser.add_argument("--client", required=True, help="dialer PeerId, 64 hex digits")
    parser.add_argument("--server", required=True, help="acceptor PeerId, 64 hex digits")
    parser.add_argument("--exporter", required=True, help="TLS exporter, 64 or 128 hex digits")
    args = parser.parse_args(argv)
    try:
        client = hex_arg(args.client, (32,), "client")
        server = hex_arg(args.server, (32,), "server")
        exporter = hex_arg(args.exporter, (32, 64), "exporter")
        with open(args.message, "rb") as f:
            message = f.read()
        verdict, failures = check(message, args.role, client, server, exporter)
    except (OSError, Unreadable) as exc:
        print(json.dumps({"ok": False, "error": str(exc)}))
        return 2
    verdict["ok"] = not failures
    verdict["failures"] = failures
    print(json.dumps(verdict, indent=2))
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
