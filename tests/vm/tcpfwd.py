#!/usr/bin/env python3
"""A TCP forwarder for the VM bench: another path to a server.

    tcpfwd.py LISTEN_PORT TARGET_PORT [STATS_FILE]     (both on 127.0.0.1)

The iscsi-multipath scenario gives the guest two portals to tgtd through two
of these and kills the one that carries the root's I/O mid-boot: every
connection it forwards closes with it (one process, threads only). With
STATS_FILE, the number of bytes forwarded so far (both ways) is written
there every 0.2 s.
"""
import os
import socket
import sys
import threading
import time

forwarded = 0
lock = threading.Lock()


def pump(src, dst):
    global forwarded
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
            with lock:
                forwarded += len(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def stats(path):
    while True:
        with open(path + ".tmp", "w") as f:
            f.write(f"{forwarded}\n")
        os.replace(path + ".tmp", path)
        time.sleep(0.2)


def main():
    listen_port, target_port = int(sys.argv[1]), int(sys.argv[2])
    if len(sys.argv) > 3:
        threading.Thread(target=stats, args=(sys.argv[3],), daemon=True).start()
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", listen_port))
    srv.listen(16)
    print(f"forwarding 127.0.0.1:{listen_port} -> 127.0.0.1:{target_port}", flush=True)
    while True:
        client, _ = srv.accept()
        try:
            upstream = socket.create_connection(("127.0.0.1", target_port))
        except OSError:
            client.close()
            continue
        for a, b in ((client, upstream), (upstream, client)):
            threading.Thread(target=pump, args=(a, b), daemon=True).start()


if __name__ == "__main__":
    main()
