#!/usr/bin/env python3
"""Independent reader of ratls-quic evidence logs, written from docs/evidence-log.md and
docs/binding.md only.

Usage: read_evidence_log.py LOG_DIR

Reads every segment, checks each segment header and frame digest, decodes every record, follows
the hash chain, recomputes the report_data of every recorded quote from the recorded binding
inputs and compares it with the report_data inside the quote, and checks the signatures of
checkpoints and retirement markers. It does NOT verify quote signatures, PCK chains or TCB status
(that needs a DCAP verifier and the collateral stored beside the log).

Prints one JSON object on stdout: {"records": [...], "ok": bool}. Exit status: 0 when every check
passes, 1 when some record fails, 2 when the directory is not a log.
"""

import json
import os
import struct
import sys

import blake3
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

SEGMENT_MAGIC, FRAME_MAGIC = b"RQEL", b"RQLR"
SEGMENT_CONTEXT = "ratls-quic evidence-log segment v1"
RECORD_CONTEXT = "ratls-quic evidence-log record v1"
CHECKPOINT_CONTEXT = b"ratls-quic evidence-log checkpoint v1"
RETIREMENT_CONTEXT = b"ratls-quic retirement v1"
BINDING_CONTEXT = "ratls-quic report_data v1"
MAX_PAYLOAD = 262144
KINDS = {1: "bond-formed", 2: "bond-refused", 3: "checkpoint", 4: "retirement"}
ROLES = {0: "client", 1: "server"}
# DCAP quote: 48-byte header, then the TD report; report_data at 520 in it.
REPORT_DATA_IN_QUOTE = 48 + 520


def derive(context, data, length=32):
    return blake3.blake3(data, derive_key_context=context).digest(length=length)


class Truncated(Exception):
    pass


class Reader:
    def __init__(self, data):
        self.data, self.pos = data, 0

    def take(self, n):
        if self.pos + n > len(self.data):
            raise Truncated()
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def u8(self):
        return self.take(1)[0]

    def u16(self):
        return struct.unpack(">H", self.take(2))[0]

    def u32(self):
        return struct.unpack(">I", self.take(4))[0]

    def u64(self):
        return struct.unpack(">Q", self.take(8))[0]

    def b16(self):
        return self.take(self.u16())

    def b32(self):
        return self.take(self.u32())

    def opt(self, n):
        flag = self.u8()
        if flag not in (0, 1):
            raise ValueError("flag")
        return self.take(n) if flag else None


def field(tag, value):
    return bytes([tag]) + struct.pack(">I", len(value)) + value


def cert_report_data(spki, not_before, not_after, peer_id):
    encoded = (field(0x01, b"cert") + field(0x02, spki) + field(0x03, struct.pack(">Q", not_before))
               + field(0x04, struct.pack(">Q", not_after)) + field(0x05, peer_id))
    return derive(BINDING_CONTEXT, encoded, 64)


def bond_report_data(role, client, server, exporter):
    encoded = (field(0x01, b"bond") + field(0x10, role.encode()) + field(0x11, client)
               + field(0x12, server) + field(0x13, exporter))
    return derive(BINDING_CONTEXT, encoded, 64)


def verifies(signer, signature, message):
    try:
        Ed25519PublicKey.from_public_bytes(signer).verify(signature, message)
        return True
    except (InvalidSignature, ValueError):
        return False


def read_quote(r):
    if r.u8() == 0:
        return None
    quote = r.b32()
    collateral = r.take(32)
    source = r.u8()
    text = r.b16().decode()
    fetched = r.u64() if source == 2 else None
    items = [r.take(32).hex() for _ in range(4)] if source == 2 else None
    return {"quote": quote, "collateral": collateral, "source": text, "fetched_at": fetched,
            "items": items}


def read_marker(data):
    r = Reader(data)
    if r.take(4) != b"RQRM" or r.u8() != 1:
        raise ValueError("marker header")
    retired, time = r.take(32), r.u64()
    flag = r.u8()
    successor = r.take(32) if flag == 1 else None
    signed = RETIREMENT_CONTEXT + b"\0" + retired + struct.pack(">Q", time) + bytes([flag])
    signed += successor or b""
    ok = verifies(retired, r.take(64), signed)
    if successor is not None:
        ok = verifies(successor, r.take(64), signed) and ok
    if r.pos != len(data):
        raise ValueError("marker trailing bytes")
    return {"retired": retired.hex(), "time": time, "signatures_ok": ok}


def check_record(payload, expected_index, head):
    r = Reader(payload)
    version, kind = r.u8(), r.u8()
    index, time, prev = r.u64(), r.u64(), r.take(32)
    out = {"index": index, "kind": KINDS.get(kind, "unknown"), "time": time, "failures": []}
    if version != 1 or kind not in KINDS:
        raise ValueError("version or kind")
    if index != expected_index:
        out["failures"].append("index out of sequence")
    if head is not None and prev != head:
        out["failures"].append("chain broken")
    if kind == 1:
        client, server = r.take(32), r.take(32)
        recorder, subject = ROLES[r.u8()], ROLES[r.u8()]
        out["level"] = r.u8()
        exporter, spki = r.b16(), r.b16()
        not_before, not_after = r.u64(), r.u64()
        cert, bond = read_quote(r), read_quote(r)
        out["tcb_status"], out["profile"] = r.b16().decode(), r.b16().decode()
        subject_id = client if subject == "client" else server
        out["subject"] = subject_id.hex()
        out["recorder"] = (client if recorder == "client" else server).hex()
        for name, quote, expected in (
            ("certificate", cert, lambda: cert_report_data(spki, not_before, not_after, subject_id)),
            ("bond", bond, lambda: bond_report_data(subject, client, server, exporter)),
        ):
            if quote is None:
                continue
            q = quote["quote"]
            # Version 5 quotes put a 6-byte body descriptor (type, size) before the TD report.
            at = REPORT_DATA_IN_QUOTE + (6 if q[:2] == b"\x05\x00" else 0)
            found = q[at:at + 64]
            out[name + "_quote_digest"] = blake3.blake3(quote["quote"]).hexdigest()
            out[name + "_collateral"] = quote["collateral"].hex()
            if found != expected():
                out["failures"].append(name + " report_data does not match the binding inputs")
    elif kind == 2:
        r.take(32)
        r.u8()
        peer = r.opt(32)
        out["peer"] = peer.hex() if peer else None
        out["reason"], out["detail"] = r.b16().decode(), r.b16().decode()
        r.opt(32), r.opt(32), r.opt(32)
    elif kind == 3:
        covered, chead, ctime, signer, signature = r.u64(), r.take(32), r.u64(), r.take(32), r.take(64)
        signed = (CHECKPOINT_CONTEXT + b"\0" + struct.pack(">Q", covered) + chead
                  + struct.pack(">Q", ctime) + signer)
        out["signer"] = signer.hex()
        if not verifies(signer, signature, signed):
            out["failures"].append("checkpoint signature")
        if covered + 1 != index or chead != prev or ctime != time:
            out["failures"].append("checkpoint does not cover the record before it")
    elif kind == 4:
        out["marker"] = read_marker(r.b32())
        if not out["marker"]["signatures_ok"]:
            out["failures"].append("marker signature")
    if r.pos != len(payload):
        raise ValueError("trailing bytes")
    return out


def frame_at(data, pos):
    """The frame at pos as (payload, digest, end), or None."""
    if data[pos:pos + 4] != FRAME_MAGIC or pos + 8 > len(data):
        return None
    (length,) = struct.unpack(">I", data[pos + 4:pos + 8])
    end = pos + 8 + length + 32
    if length > MAX_PAYLOAD or end > len(data):
        return None
    payload, digest = data[pos + 8:pos + 8 + length], data[pos + 8 + length:end]
    if derive(RECORD_CONTEXT, payload) != digest:
        return None
    return payload, digest, end


def main():
    log = sys.argv[1]
    names = sorted(n for n in os.listdir(log) if n.startswith("segment-") and n.endswith(".rqel"))
    if not names:
        print(json.dumps({"error": "no segment files"}))
        return 2
    records, head, expected = [], bytes(32), 0
    for seq, name in enumerate(names):
        with open(os.path.join(log, name), "rb") as f:
            data = f.read()
        header = data[:32]
        if (header[:4] != SEGMENT_MAGIC or header[4] != 1 or derive(SEGMENT_CONTEXT, header[:24])[:8] != header[24:32]
                or struct.unpack(">QQ", header[8:24]) != (seq, expected)):
            print(json.dumps({"error": f"segment {name}: bad header"}))
            return 2
        pos = 32
        while pos < len(data):
            frame = frame_at(data, pos)
            if frame is None:
                damaged = {"index": expected, "kind": "damaged", "segment": seq, "offset": pos,
                           "failures": ["frame digest or length"]}
                records.append(damaged)
                # A frame whose length is readable and is followed by a valid frame (or the end)
                # is one damaged record: the chain goes on from the digest it stores.
                if data[pos:pos + 4] == FRAME_MAGIC and pos + 8 <= len(data):
                    (length,) = struct.unpack(">I", data[pos + 4:pos + 8])
                    end = pos + 8 + length + 32
                    if length <= MAX_PAYLOAD and end <= len(data) and (
                            end == len(data) or frame_at(data, end) is not None):
                        head, expected, pos = data[end - 32:end], expected + 1, end
                        continue
                # Otherwise resume at the next valid frame; the next link cannot be checked.
                nxt = pos + 1
                while nxt < len(data) and frame_at(data, nxt) is None:
                    nxt = data.find(FRAME_MAGIC, nxt + 1)
                    if nxt < 0:
                        nxt = len(data)
                head, pos = None, nxt
                continue
            payload, digest, end = frame
            try:
                verdict = check_record(payload, expected, head)
            except (Truncated, ValueError, KeyError, UnicodeDecodeError) as error:
                verdict = {"index": expected, "kind": "damaged", "failures": [f"payload: {error!r}"]}
            verdict.update({"segment": seq, "offset": pos, "digest": digest.hex()})
            records.append(verdict)
            head, expected, pos = digest, verdict["index"] + 1, end
    ok = all(not r["failures"] for r in records)
    print(json.dumps({"records": records, "ok": ok}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
