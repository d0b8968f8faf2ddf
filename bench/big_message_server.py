#!/usr/bin/env python3
"""A one-message POP3 server for measuring `pop3 fetch` on a big message.

Usage: big_message_server.py PORT MIB [LISTED]

Serves one session (USER/PASS accepted whatever they are) whose only message
is MIB MiB of 78-byte lines, generated as it is sent. LIST gives LISTED as
its size (default: the true size), so a lying server can be played too.
Exits after the session.
"""

import socket
import sys

LINE = b"x" * 76 + b"\r\n"
HEADER = b"From: bench@example.org\r\nSubject: big\r\n\r\n"


def main():
    port, mib = int(sys.argv[1]), int(sys.argv[2])
    lines = (mib << 20) // len(LINE)
    size = len(HEADER) + lines * len(LINE)
    listed = int(sys.argv[3]) if len(sys.argv) > 3 else size
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", port))
    server.listen(1)
    conn, _ = server.accept()
    out = conn.makefile("wb", buffering=1 << 20)
    reader = conn.makefile("rb")
    out.write(b"+OK bench ready\r\n")
    out.flush()
    for raw in reader:
        verb = raw.strip().split(b" ")[0].upper()
        if verb == b"CAPA":
            out.write(b"-ERR no CAPA\r\n")
        elif verb in (b"USER", b"PASS", b"NOOP"):
            out.write(b"+OK\r\n")
        elif verb == b"UIDL":
            out.write(b"+OK\r\n1 big-1\r\n.\r\n")
        elif verb == b"LIST":
            out.write(b"+OK\r\n1 %d\r\n.\r\n" % listed)
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


if __name__ == "__main__":
    main()
