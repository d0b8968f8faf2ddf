#!/usr/bin/env python3
"""The sans-IO layer: pop3.Client driven by a plain blocking socket.

    POP3_PASSWORD=... python3 sansio_blocking.py HOST [--port N] [--tls implicit|starttls|none]
        [--ca ca.pem] --user NAME

Prints the size and Subject of every message. The client makes every protocol
decision; this loop only moves bytes and runs TLS when the client says so.
"""

import argparse
import os
import socket
import ssl

import pop3


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("host")
    p.add_argument("--port", type=int)
    p.add_argument("--tls", choices=["implicit", "starttls", "none"], default="implicit")
    p.add_argument("--ca", help="CA file to trust instead of the system store")
    p.add_argument("--user", required=True)
    args = p.parse_args()
    password = os.environ["POP3_PASSWORD"]
    context = ssl.create_default_context(cafile=args.ca)
    port = args.port or (995 if args.tls == "implicit" else 110)

    sock = socket.create_connection((args.host, port), timeout=30)
    if args.tls == "implicit":
        sock = context.wrap_socket(sock, server_hostname=args.host)
    client = pop3.Client(encrypted=args.tls == "implicit", allow_plaintext_credentials=args.tls == "none")

    def wait_for(handle):
        """Runs the loop until `handle` completes; returns its events."""
        nonlocal sock
        events = []
        while True:
            sock.sendall(client.data_to_send())
            event = client.next_event()
            if isinstance(event, pop3.NeedData):
                client.receive_data(sock.recv(65536))
            elif isinstance(event, pop3.StartTls):
                sock = context.wrap_socket(sock, server_hostname=args.host)
                client.tls_established()
            elif isinstance(event, pop3.Closed):
                return events
            elif isinstance(event, pop3.Greeting) and handle is None:
                print("greeting:", event.text)
                return [event]
            elif getattr(event, "handle", None) == handle:
                events.append(event)
                if isinstance(event, pop3.Err):
                    raise pop3.ServerError.from_event(event)
                if not isinstance(event, (pop3.BodyStart, pop3.BodyChunk)):
                    return events

    wait_for(None)
    if args.tls == "starttls":
        wait_for(client.start_tls())
    wait_for(client.login(args.user, password))
    [listing] = wait_for(client.list())
    handles = client.retr_many([e.msg for e in listing.entries])  # pipelined
    for entry, handle in zip(listing.entries, handles):
        body = b"".join(e.data for e in wait_for(handle) if isinstance(e, pop3.BodyChunk))
        subject = next(
            (line for line in body.split(b"\r\n") if line.lower().startswith(b"subject:")), b""
        )
        print(entry.msg, entry.size, subject.decode("ascii", "replace"))
    wait_for(client.quit())
    sock.close()


if __name__ == "__main__":
    main()
