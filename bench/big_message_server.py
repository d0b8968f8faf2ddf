#!/usr/bin/env python3
"""A POP3 server for measuring `pop3 fetch` on big (or many) messages.

Usage: big_message_server.py PORT KIB [COUNT [LISTED]]

Serves one session (USER/PASS accepted whatever they are) with COUNT
messages (default 1) of KIB KiB of 78-byte lines each, generated as they are
sent. LIST gives LISTED as each size (default: the true size), so a lying
server can be played too. Connections that send nothing (a probe for
whether it listens) are closed; it exits after the first real session.
"""

import socket
import sys

LINE = b"x" * 76 + b"\r\n"
HEADER = b"From: bench@example.org\r\nSubject: big\r\n\r\n"


def main():
    port, kib = int(sys.argv[1]), int(sys.argv[2])
    count = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    lines = (kib << 10) // len(LINE)
    size = len(HEADER) + lines * len(LINE)
    listed = int(sys.argv[4]) if len(sys.argv) > 4 else size
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", port))
    server.listen(1)
    while True:
        try:
            if serve(server.accept()[0], count, lines, listed):
                break
        except OSError:
            # A probe that closed at once (reset): wait for the real client.
            pass


def serve(conn, count, lines, listed):
    """One session; False if the client sent no command."""
    talked = False
    out = conn.makefile("wb", buffering=1 << 20)
    reader = conn.makefile("rb")
    try:
        out.write(b"+OK bench ready\r\n")
        out.flush()
    except OSError:
        return False
    for raw in reader:
        talked = True
        verb = raw.strip().split(b" ")[0].upper()
        if verb == b"CAPA":
            out.write(b"-ERR no CAPA\r\n")
        elif verb in (b"USER", b"PASS", b"NOOP"):
            out.write(b"+OK\r\n")
        elif verb == b"UIDL":
            out.write(b"+OK\r\n")
            out.write(b"".join(b"%d big-%d\r\n" % (i, i) for i in range(1, count + 1)))
            out.write(b".\r\n")
        elif verb == b"LIST":
            out.write(b"+OK\r\n")
            out.write(b"".join(b"%d %d\r\n" % (i, listed) for i in range(1, count + 1)))
            out.write(b".\r\n")
        elif verb == b"RETR":
            out.write(b"+OK\r\n" + HEADER)
            chunk = LINE * 1024
            for _ in range(lines // 1024):
                out.write(chunk)
            out.write(LINE * (lines % 1024))
            out.write(b".\r\n")
        elif verb == b"QUIT":
            out.write(b"+OK bye\r\n")
            out.flush()
            break
        else:
            out.write(b"-ERR unknown\r\n")
        out.flush()
    conn.close()
    return talked


if __name__ == "__main__":
    main()
