"""A tus 1.0 server that stores nothing: it answers creation, offset and append requests at once
and discards every body byte. `bench/run` uploads to it to measure each client's own ceiling on
this machine (what the client reaches when the server costs nothing), in the same run as the
real servers.

    python3 bench/null_sink.py PORT

Just enough of tus for tuspy and tus-js-client: OPTIONS, POST (creation), HEAD, PATCH, DELETE,
keep-alive. One thread per connection; bodies are read with `recv_into` into one reused buffer.
"""
import itertools
import socket
import sys
import threading

BUF = 4 << 20
ids = itertools.count(1)
offsets = {}
lock = threading.Lock()


def reply(conn, status, headers=()):
    lines = [f"HTTP/1.1 {status}", "Tus-Resumable: 1.0.0", "Content-Length: 0"]
    lines += [f"{k}: {v}" for k, v in headers]
    conn.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())


def serve(conn):
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buf = bytearray(BUF)
    view = memoryview(buf)
    pending = b""
    while True:
        while b"\r\n\r\n" not in pending:
            chunk = conn.recv(65536)
            if not chunk:
                return
            pending += chunk
        head, pending = pending.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        length = int(headers.get("content-length", "0"))
        # Discard the body: what came with the head first, then straight from the socket.
        take = min(length, len(pending))
        pending = pending[take:]
        left = length - take
        while left:
            n = conn.recv_into(view[: min(left, BUF)])
            if not n:
                return
            left -= n
        name = target.rstrip("/").rsplit("/", 1)[-1]
        if method == "OPTIONS":
            reply(conn, "204 No Content", [("Tus-Version", "1.0.0"), ("Tus-Extension", "creation")])
        elif method == "POST":
            uid = str(next(ids))
            with lock:
                offsets[uid] = 0
            reply(conn, "201 Created", [("Location", f"{target.rstrip('/')}/{uid}"), ("Upload-Offset", "0")])
        elif method == "HEAD":
            with lock:
                off = offsets.get(name)
            if off is None:
                reply(conn, "404 Not Found")
            else:
                reply(conn, "200 OK", [("Upload-Offset", str(off)), ("Cache-Control", "no-store")])
        elif method == "PATCH":
            with lock:
                off = offsets.get(name)
                if off is not None:
                    off += length
                    offsets[name] = off
            if off is None:
                reply(conn, "404 Not Found")
            else:
                reply(conn, "204 No Content", [("Upload-Offset", str(off))])
        elif method == "DELETE":
            with lock:
                offsets.pop(name, None)
            reply(conn, "204 No Content")
        else:
            reply(conn, "405 Method Not Allowed")


def main():
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", int(sys.argv[1])))
    srv.listen(64)
    while True:
        conn, _ = srv.accept()
        threading.Thread(target=lambda c=conn: (serve(c), c.close()), daemon=True).start()


if __name__ == "__main__":
    main()
