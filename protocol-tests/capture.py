#!/usr/bin/env python3
"""Record the request frames real Kafka clients send, for protocol-tests/.

A TCP proxy: clients connect to --listen, bytes go to --broker unchanged, and
every client->broker frame is appended to --out as one line:
    <api_key> <api_version> <hex of the frame without its size prefix>
Start the broker advertising the proxy's address so every connection the
client opens passes through here. Frames are kept byte for byte; the Rust
tests replay them against a fresh broker and check the answers.
"""
import argparse
import socket
import struct
import threading


def pump_requests(src, dst, out, lock):
    buf = b""
    while True:
        data = src.recv(65536)
        if not data:
            break
        dst.sendall(data)
        buf += data
        while len(buf) >= 4:
            (size,) = struct.unpack(">i", buf[:4])
            if len(buf) < 4 + size:
                break
            frame = buf[4 : 4 + size]
            buf = buf[4 + size :]
            key, ver = struct.unpack(">hh", frame[:4])
            with lock:
                out.write(f"{key} {ver} {frame.hex()}\n")
                out.flush()
    dst.shutdown(socket.SHUT_WR)


def pump(src, dst):
    while True:
        data = src.recv(65536)
        if not data:
            break
        dst.sendall(data)
    try:
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", type=int, required=True)
    ap.add_argument("--broker", required=True, help="host:port")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    host, port = a.broker.rsplit(":", 1)
    lock = threading.Lock()
    out = open(a.out, "a")
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", a.listen))
    srv.listen(64)
    while True:
        c, _ = srv.accept()
        b = socket.create_connection((host, int(port)))
        threading.Thread(target=pump_requests, args=(c, b, out, lock), daemon=True).start()
        threading.Thread(target=pump, args=(b, c), daemon=True).start()


if __name__ == "__main__":
    main()
