"""A loopback TCP relay that counts the bytes ComfyUI sends to one monitor (HTTP and websocket).

Why: ``/proc/PID/io`` does not count socket sends, and the exporter does not count what it
receives, so the real-ComfyUI bench puts each monitor behind this relay. It copies bytes both ways
on plain threads (its CPU is the bench's, not ComfyUI's) and counts each direction.
"""

from __future__ import annotations

import contextlib
import socket
import threading


class ByteProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.to_client = 0  # bytes ComfyUI sent to the monitor
        self.to_server = 0
        self._lock = threading.Lock()
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.port = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._closed = False
        threading.Thread(target=self._accept, name="byteproxy", daemon=True).start()

    def snapshot(self) -> int:
        with self._lock:
            return self.to_client

    def close(self) -> None:
        self._closed = True
        self._listener.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.target, timeout=10)
                server.settimeout(None)
            except OSError:
                client.close()
                continue
            threading.Thread(target=self._pipe, args=(server, client, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(client, server, False), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, to_client: bool) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
                with self._lock:
                    if to_client:
                        self.to_client += len(data)
                    else:
                        self.to_server += len(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()
