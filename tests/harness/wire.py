"""One HTTP/1.1 keep-alive connection on a raw socket, parsed strictly by h11.

httpx hides what the tests of the edge must see: a header sent twice, bytes after a bodiless
answer, a connection the server dropped. h11 refuses a malformed answer and notices bytes a
304 should not have (they would be parsed as the next answer's status line).
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

import h11


@dataclass
class Answer:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def all(self, name: str) -> list[str]:
        """Every value of header ``name`` (lower case), in order."""
        return [value for key, value in self.headers if key == name]

    def one(self, name: str) -> str | None:
        values = self.all(name)
        assert len(values) <= 1, f"{name} appears {len(values)} times: {values}"
        return values[0] if values else None


class WireConnection:
    """``with WireConnection(host, port) as wire: wire.request("GET", "/path", headers)``."""

    def __init__(self, host: str, port: int, *, timeout: float = 10.0) -> None:
        self.host = host
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.conn = h11.Connection(h11.CLIENT)

    def __enter__(self) -> WireConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()

    def request(
        self,
        method: str,
        target: str,
        headers: dict[str, str] | None = None,
        *,
        chunked_body: bytes | None = None,
        trailers: dict[str, str] | None = None,
    ) -> Answer:
        """One exchange; with ``chunked_body`` the request body is sent chunked, followed by
        ``trailers`` (header fields after the last chunk)."""
        if self.conn.our_state is h11.DONE:
            self.conn.start_next_cycle()
        fields = [("host", self.host), *(headers or {}).items()]
        if chunked_body is not None:
            fields.append(("transfer-encoding", "chunked"))
        self.sock.sendall(self.conn.send(h11.Request(method=method, target=target, headers=fields)))
        if chunked_body:
            self.sock.sendall(self.conn.send(h11.Data(data=chunked_body)))
        end = h11.EndOfMessage(headers=list((trailers or {}).items()))
        self.sock.sendall(self.conn.send(end))
        response: h11.Response | None = None
        body = bytearray()
        while True:
            event = self.conn.next_event()
            if event is h11.NEED_DATA:
                self.conn.receive_data(self.sock.recv(65536))
            elif isinstance(event, h11.Response):
                response = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                break
            elif isinstance(event, h11.ConnectionClosed):
                raise ConnectionError("the server closed the connection mid-answer")
        assert response is not None
        headers_list = [(name.decode(), value.decode()) for name, value in response.headers]
        return Answer(response.status_code, headers_list, bytes(body))

    @property
    def kept_alive(self) -> bool:
        """The last exchange ended with the connection reusable, and the server has not
        closed it or sent anything more since (a stray byte would be a broken answer)."""
        if self.conn.their_state is not h11.DONE or self.conn.our_state is not h11.DONE:
            return False
        leftover, closed = self.conn.trailing_data
        if leftover or closed:
            return False
        timeout = self.sock.gettimeout()
        self.sock.setblocking(False)
        try:
            self.sock.recv(1, socket.MSG_PEEK)  # b"" (closed) or stray bytes: not reusable
        except BlockingIOError:
            return True
        finally:
            self.sock.settimeout(timeout)
        return False
