#!/usr/bin/env python3
"""A ratls-quic acceptor on another QUIC stack (aioquic), written from docs/transport.md.

Usage: aioquic_server.py --cert FILE --key FILE [--port N] [--timeout SECS]

Serves ALPN `ratls-quic/1` on 127.0.0.1 (port 0: any free port) with the given certificate and
PKCS#8 key (PEM or DER), typically a certificate carrying a quote, so that a ratls-quic dialer
judges it. It does not ask for or check a client certificate. For the first connection it reads
the dialer's bond message (the whole of the dialer's first unidirectional stream), then sends
its own: the bond message of a side that presents no quote per connection
(`52 51 42 31 00`, certificate freshness), on its first unidirectional stream. It echoes every
bidirectional stream. It exits when that connection ends.

Prints JSON lines on stdout: `{"listening": PORT}` once it listens, then one report of the
connection: the dialer's bond message (hex), the messages echoed, the close. Exit status 0 when
a connection was served, 1 when none came within --timeout, 2 on a usage error.
"""

import argparse
import asyncio
import json
import os
import sys
import tempfile

from aioquic.asyncio import serve
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import ConnectionTerminated, StreamDataReceived

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from aioquic_client import ALPN, BOND_NO_QUOTE, as_pem, is_server_initiated, is_uni  # noqa: E402

done = None
report = {"client_bond_message": None, "echoed": [], "closed": None}


class Server(QuicConnectionProtocol):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.streams = {}
        self.bond_stream = None

    def quic_event_received(self, event):
        if isinstance(event, StreamDataReceived):
            data = self.streams.setdefault(event.stream_id, bytearray())
            data.extend(event.data)
            if not event.end_stream:
                return
            if is_uni(event.stream_id) and not is_server_initiated(event.stream_id):
                if self.bond_stream is None:
                    # The dialer's bond message: answer with ours, on our first uni stream.
                    self.bond_stream = event.stream_id
                    report["client_bond_message"] = bytes(data).hex()
                    reply = self._quic.get_next_available_stream_id(is_unidirectional=True)
                    self._quic.send_stream_data(reply, BOND_NO_QUOTE, end_stream=True)
            elif not is_uni(event.stream_id):
                report["echoed"].append(bytes(data).decode("utf-8", "replace"))
                self._quic.send_stream_data(event.stream_id, bytes(data), end_stream=True)
            self.transmit()
        elif isinstance(event, ConnectionTerminated):
            report["closed"] = {
                "error_code": event.error_code,
                "reason": event.reason_phrase,
            }
            if not done.done():
                done.set_result(True)


async def main_async(args, cert, key):
    global done
    done = asyncio.get_running_loop().create_future()
    configuration = QuicConfiguration(is_client=False, alpn_protocols=[ALPN])
    configuration.load_cert_chain(cert, key)
    server = await serve(
        "127.0.0.1", args.port, configuration=configuration, create_protocol=Server
    )
    port = server._transport.get_extra_info("sockname")[1]
    print(json.dumps({"listening": port}), flush=True)
    try:
        await asyncio.wait_for(done, args.timeout)
    except asyncio.TimeoutError:
        server.close()
        return 1
    server.close()
    print(json.dumps(report), flush=True)
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=30.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        cert, key = as_pem(args.cert, args.key, directory)
        code = asyncio.run(main_async(args, cert, key))
    sys.exit(code)


if __name__ == "__main__":
    main()
