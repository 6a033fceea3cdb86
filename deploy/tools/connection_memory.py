#!/usr/bin/env python3
"""Measure what one stalled streaming connection costs sluice in memory.

This is the number behind the "streaming" line of the memory-limit arithmetic
in deploy/k8s/base/deployment.yaml. It starts two real sluice processes on
loopback: `origin` serves a directory holding one large file, `proxy` passes
it through from origin over HTTP (the shape of every deployment). Then it opens
N client connections to proxy, reads the first bytes of the large file on each
and stops reading, so every stream is stalled by backpressure with all its
buffers full. It prints proxy's resident memory idle and loaded, and the
difference per connection.

    python3 deploy/tools/connection_memory.py --sluice target/release/sluice -n 200

Loopback only; everything it starts, it stops.
"""
import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def status_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/{pid}/status")


def wait_ready(port, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                if b" 200 " in s.recv(100):
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"sluice on port {port} did not become ready")


async def stall(port, path, first_bytes):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    await writer.drain()
    got = 0
    while got < first_bytes:
        chunk = await reader.read(first_bytes - got)
        if not chunk:
            raise RuntimeError("connection closed early")
        got += len(chunk)
    return reader, writer


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sluice", default="target/release/sluice")
    ap.add_argument("-n", "--connections", type=int, default=200)
    ap.add_argument("--file-mib", type=int, default=64)
    ap.add_argument("--settle", type=float, default=3.0)
    ap.add_argument("--direct", action="store_true",
                    help="stall clients on the directory-origin sluice itself (no HTTP origin hop)")
    args = ap.parse_args()

    procs = []
    with tempfile.TemporaryDirectory() as root:
        with open(os.path.join(root, "big.bin"), "wb") as f:
            f.write(os.urandom(args.file_mib << 20))
        o_port, o_admin, p_port, p_admin = (free_port() for _ in range(4))
        env = {k: v for k, v in os.environ.items() if not k.startswith("SLUICE_")}
        env["RUST_LOG"] = "warn"
        try:
            procs.append(subprocess.Popen(
                [args.sluice, "--origin", root, "--listen", f"127.0.0.1:{o_port}",
                 "--admin-listen", f"127.0.0.1:{o_admin}"], env=env))
            proxy = subprocess.Popen(
                [args.sluice, "--origin", f"http://127.0.0.1:{o_port}",
                 "--listen", f"127.0.0.1:{p_port}", "--admin-listen", f"127.0.0.1:{p_admin}",
                 "--max-connections", str(args.connections + 16)], env=env)
            procs.append(proxy)
            wait_ready(o_port)
            wait_ready(p_port)
            if args.direct:
                proxy, p_port = procs[0], o_port
            idle = status_kib(proxy.pid, "VmRSS")
            conns = await asyncio.gather(
                *(stall(p_port, "/big.bin", 1024) for _ in range(args.connections)))
            await asyncio.sleep(args.settle)
            loaded = status_kib(proxy.pid, "VmRSS")
            hwm = status_kib(proxy.pid, "VmHWM")
            for _, w in conns:
                w.close()
            per_conn = (loaded - idle) / args.connections
            print(f"shape={'dir-origin' if args.direct else 'http-origin'} connections={args.connections} idle_rss_kib={idle} loaded_rss_kib={loaded} "
                  f"hwm_kib={hwm} per_connection_kib={per_conn:.1f}")
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                try:
                    p.wait(timeout=40)
                except subprocess.TimeoutExpired:
                    p.kill()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
