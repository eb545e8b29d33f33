#!/usr/bin/env python3
"""A ratls-quic dialer on another QUIC stack (aioquic), written from docs/transport.md.

Usage: aioquic_client.py HOST PORT [--cert FILE --key FILE | --self-signed] [--bond]
                         [--message TEXT] [--capture-cert DER] [--timeout SECS]

Connects with ALPN `ratls-quic/1` and SNI `ratls.invalid`, presenting the given certificate
and PKCS#8 key (PEM or DER) (or, with --self-signed, an Ed25519 certificate it makes itself without evidence; with neither,
no certificate). The server certificate is not checked here (check_cert.py does that on the copy
written by --capture-cert). With --bond, once the handshake completes it sends the bond message
of a side without a quote (`52 51 42 31 00` on its first unidirectional stream), reads the
server's bond message from the server's first unidirectional stream, then sends --message on a
bidirectional stream and reads the echo.

Prints one JSON object: whether the handshake completed, the close the server sent (error code,
reason phrase), how many milliseconds after the handshake its CONNECTION_CLOSE arrived and how
many of this side's timers fired before it, when aioquic reported ConnectionTerminated (after its
draining period of 3 PTO), the stream data received before the close, the server's bond message
(hex) and the echo. Exit status 0 when it ran (whatever the
server decided), 2 on a usage error.
"""

import argparse
import asyncio
import datetime
import json
import os
import ssl
import sys
import tempfile
import time

from aioquic.asyncio import connect
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import (
    ConnectionTerminated,
    HandshakeCompleted,
    StreamDataReceived,
)

ALPN = "ratls-quic/1"
SERVER_NAME = "ratls.invalid"
BOND_NO_QUOTE = b"RQB1\x00"


def is_uni(stream_id):
    return stream_id & 2 == 2


def is_server_initiated(stream_id):
    return stream_id & 1 == 1


class Client(QuicConnectionProtocol):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.started = time.monotonic()
        self.handshake_at = None
        self.terminated = None
        self.streams = {}
        self.finished = set()
        self.stream_data_before_close = 0
        self.changed = asyncio.Event()
        # When the server's CONNECTION_CLOSE arrived. aioquic reports ConnectionTerminated only
        # once its draining period (3 PTO, RFC 9000 10.2.2) is over, tens of milliseconds later.
        self.close_received_at = None
        # Timers (loss detection, probes) that fired on this side after its handshake completed
        # and before the close arrived: a close sent in reply to the client's Finished flight
        # arrives before any.
        self.timers_before_close = 0

    def datagram_received(self, data, addr):
        super().datagram_received(data, addr)
        if self.close_received_at is None and self._quic._close_event is not None:
            self.close_received_at = time.monotonic()
            self.changed.set()

    def _handle_timer(self):
        if self.handshake_at is not None and self.close_received_at is None:
            self.timers_before_close += 1
        super()._handle_timer()

    def quic_event_received(self, event):
        now = time.monotonic()
        if isinstance(event, HandshakeCompleted):
            self.handshake_at = now
        elif isinstance(event, StreamDataReceived):
            self.streams.setdefault(event.stream_id, bytearray()).extend(event.data)
            self.stream_data_before_close += len(event.data)
            if event.end_stream:
                self.finished.add(event.stream_id)
        elif isinstance(event, ConnectionTerminated):
            self.terminated = (event, now)
        self.changed.set()

    async def until(self, predicate, deadline):
        while not predicate():
            if self.terminated is not None or self.close_received_at is not None:
                return False
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), remaining)
            except asyncio.TimeoutError:
                return False
        return True

    def server_uni_stream(self):
        for stream_id in sorted(self.streams):
            if is_uni(stream_id) and is_server_initiated(stream_id):
                return stream_id
        return None


def self_signed(directory):
    """An Ed25519 certificate CN=ratls without any extension: no evidence."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519
    from cryptography.x509.oid import NameOID

    key = ed25519.Ed25519PrivateKey.generate()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ratls")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(minutes=30))
        .sign(key, None)
    )
    cert_path = os.path.join(directory, "cert.pem")
    key_path = os.path.join(directory, "key.pem")
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as f:
        f.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    return cert_path, key_path


def as_pem(cert_path, key_path, directory):
    """aioquic loads PEM only: DER inputs (a certificate, a PKCS#8 key) are converted."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    with open(cert_path, "rb") as f:
        cert = f.read()
    with open(key_path, "rb") as f:
        key = f.read()
    if cert.startswith(b"-----"):
        return cert_path, key_path
    cert = x509.load_der_x509_certificate(cert)
    key = serialization.load_der_private_key(key, password=None)
    out_cert = os.path.join(directory, "given-cert.pem")
    out_key = os.path.join(directory, "given-key.pem")
    with open(out_cert, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(out_key, "wb") as f:
        f.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    return out_cert, out_key


def ms(later, earlier):
    if later is None or earlier is None:
        return None
    return round((later - earlier) * 1000.0, 3)


async def run(args, cert, key):
    configuration = QuicConfiguration(
        is_client=True,
        alpn_protocols=[ALPN],
        server_name=SERVER_NAME,
        verify_mode=ssl.CERT_NONE,
    )
    if cert:
        configuration.load_cert_chain(cert, key)
    out = {
        "handshake_completed": False,
        "closed": None,
        "close_after_handshake_ms": None,
        "stream_bytes_before_close": 0,
        "server_bond_message": None,
        "echo": None,
        "echo_after_handshake_ms": None,
    }
    deadline = time.monotonic() + args.timeout
    async with connect(
        args.host,
        args.port,
        configuration=configuration,
        create_protocol=Client,
        wait_connected=False,
    ) as client:
        # Without wait_connected, aioquic leaves sending the first flight to the caller.
        client.transmit()
        await client.until(lambda: client.handshake_at is not None, deadline)
        out["handshake_completed"] = client.handshake_at is not None
        if args.capture_cert:
            peer = getattr(client._quic.tls, "_peer_certificate", None)
            if peer is not None:
                from cryptography.hazmat.primitives import serialization

                with open(args.capture_cert, "wb") as f:
                    f.write(peer.public_bytes(serialization.Encoding.DER))
        if args.bond and client.handshake_at is not None:
            quic = client._quic
            bond_stream = quic.get_next_available_stream_id(is_unidirectional=True)
            quic.send_stream_data(bond_stream, BOND_NO_QUOTE, end_stream=True)
            client.transmit()
            got = await client.until(
                lambda: client.server_uni_stream() in client.finished, deadline
            )
            if got:
                out["server_bond_message"] = bytes(
                    client.streams[client.server_uni_stream()]
                ).hex()
                echo_stream = quic.get_next_available_stream_id()
                quic.send_stream_data(echo_stream, args.message.encode(), end_stream=True)
                client.transmit()
                if await client.until(lambda: echo_stream in client.finished, deadline):
                    out["echo"] = bytes(client.streams[echo_stream]).decode("utf-8", "replace")
                    out["echo_after_handshake_ms"] = ms(time.monotonic(), client.handshake_at)
        else:
            await client.until(lambda: False, deadline)
        if client.close_received_at is not None:
            event = client._quic._close_event
            out["closed"] = {
                "error_code": event.error_code,
                "reason": event.reason_phrase,
                "frame_type": event.frame_type,
            }
            out["close_after_handshake_ms"] = ms(client.close_received_at, client.handshake_at)
            out["stream_bytes_before_close"] = client.stream_data_before_close
            out["timers_before_close"] = client.timers_before_close
            # What aioquic itself reports: ConnectionTerminated, after draining.
            while client.terminated is None and time.monotonic() < deadline:
                client.changed.clear()
                try:
                    await asyncio.wait_for(client.changed.wait(), deadline - time.monotonic())
                except asyncio.TimeoutError:
                    break
            if client.terminated is not None:
                out["terminated_after_handshake_ms"] = ms(client.terminated[1], client.handshake_at)
        client.close()
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--self-signed", action="store_true")
    parser.add_argument("--bond", action="store_true")
    parser.add_argument("--message", default="hello from aioquic")
    parser.add_argument("--capture-cert")
    parser.add_argument("--timeout", type=float, default=10.0)
    parser.add_argument("--verbose", action="store_true", help="aioquic's debug log on stderr")
    args = parser.parse_args()
    if args.verbose:
        import logging

        logging.basicConfig(
            level=logging.DEBUG, stream=sys.stderr, format="%(created).6f %(message)s"
        )
    if bool(args.cert) != bool(args.key) or (args.cert and args.self_signed):
        parser.error("give --cert with --key, or --self-signed, or neither")
    with tempfile.TemporaryDirectory() as directory:
        cert, key = args.cert, args.key
        if cert:
            cert, key = as_pem(cert, key, directory)
        if args.self_signed:
            cert, key = self_signed(directory)
        out = asyncio.run(run(args, cert, key))
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
