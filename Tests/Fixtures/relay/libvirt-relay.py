#!/usr/bin/env python3
"""A relay between libvirt clients and a libvirtd socket that stops relaying on cue.

    libvirt-relay.py LISTEN_SOCKET UPSTREAM_SOCKET [FREEZE_PROCEDURE [OCCURRENCE]]

Every client connection is relayed to UPSTREAM_SOCKET. Client messages are read by libvirt's RPC
framing (4-byte big-endian length, then program, version and procedure numbers); once a client
sends FREEZE_PROCEDURE (default 344, ConnectGetAllDomainStats: the listing every observation starts with), the relay stops forwarding in both
directions but keeps every socket open: to the client, a daemon that froze in the middle of a call.
With OCCURRENCE n, the n-th such message (counted across connections) freezes it: for example 11
(DomainDefineXML) with 2 lets a first apply through and freezes the next node's definition.
Used by the tests of Drover's call deadlines; never the shared daemon itself.
"""
import os, socket, struct, sys, threading

listen_path, upstream_path = sys.argv[1], sys.argv[2]
freeze_proc = int(sys.argv[3]) if len(sys.argv) > 3 else 344
occurrence = int(sys.argv[4]) if len(sys.argv) > 4 else 1
seen = [0]
seen_lock = threading.Lock()
frozen = threading.Event()


def pump_server(upstream, client):
    try:
        while True:
            data = upstream.recv(65536)
            if not data:
                break
            if frozen.is_set():
                threading.Event().wait()  # hold forever
            client.sendall(data)
    except OSError:
        pass


def serve(client):
    upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    upstream.connect(upstream_path)
    threading.Thread(target=pump_server, args=(upstream, client), daemon=True).start()
    buffer = b""
    try:
        while True:
            data = client.recv(65536)
            if not data:
                break
            buffer += data
            while len(buffer) >= 16:
                length = struct.unpack(">I", buffer[:4])[0]
                if len(buffer) < length:
                    break
                message, buffer = buffer[:length], buffer[length:]
                procedure = struct.unpack(">I", message[12:16])[0]
                if procedure == freeze_proc:
                    with seen_lock:
                        seen[0] += 1
                        if seen[0] >= occurrence:
                            frozen.set()
                if frozen.is_set():
                    continue
                upstream.sendall(message)
    except OSError:
        pass


if os.path.exists(listen_path):
    os.unlink(listen_path)
server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
server.bind(listen_path)
server.listen(16)
print("ready", flush=True)
while True:
    conn, _ = server.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
