"""`distrib serve` under load: /healthz latency beside slow connections, and a burst of
concurrent one-click POSTs (each committed with a full sync before its answer).

    python benchmarks/serve_load.py [SLOW_CONNECTIONS] [CONCURRENT_POSTS]

Prints figures; asserts nothing.
"""

from __future__ import annotations

import resource
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from distrib import subscribers as subs  # noqa: E402
from distrib.ledger import open_ledger  # noqa: E402
from distrib.serve import make_server  # noqa: E402
from distrib.unsubscribe import make_token, signing_key  # noqa: E402
from tests.subscribers.conftest import make_settings  # noqa: E402


def healthz(host: str, port: int) -> float:
    started = time.perf_counter()
    with socket.create_connection((host, port), timeout=30) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := s.recv(4096):
            data += chunk
    assert data.startswith(b"HTTP/1.1 200"), data[:80]
    return time.perf_counter() - started


def main() -> None:
    n_slow = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    n_posts = int(sys.argv[2]) if len(sys.argv) > 2 else 200
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 2 * n_slow + 4 * n_posts + 256), hard))
    tmp = Path(tempfile.mkdtemp())
    settings = make_settings(tmp, email={"unsubscribe_url": "https://b.example/u?token={token}"})
    with open_ledger(tmp / "distrib.sqlite") as led:
        for i in range(n_posts):
            subs.add(led, f"reader{i}@example.org")
        key = signing_key(settings, led)
    server = make_server(settings, tmp / "distrib.sqlite", "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    host, port = "127.0.0.1", server.port
    try:
        idle = [healthz(host, port) for _ in range(20)]
        slow = []
        for _ in range(n_slow):
            s = socket.create_connection((host, port))
            s.sendall(b"GET /healthz HTTP/1.1\r\nX-Slow: ")
            slow.append(s)
        loaded = [healthz(host, port) for _ in range(20)]
        print(f"/healthz, idle server: median {statistics.median(idle) * 1000:.1f} ms")
        print(
            f"/healthz beside {n_slow} slow connections: median {statistics.median(loaded) * 1000:.1f} ms, "
            f"max {max(loaded) * 1000:.1f} ms"
        )
        for s in slow:
            s.close()

        barrier = threading.Barrier(n_posts)
        answers: list[object] = [None] * n_posts
        latencies: list[float] = [0.0] * n_posts

        def post(i: int) -> None:
            token = make_token(key, f"reader{i}@example.org", "digest")
            req = (
                f"POST /u?token={token} HTTP/1.1\r\nHost: b\r\nConnection: close\r\n"
                "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 26\r\n\r\n"
                "List-Unsubscribe=One-Click"
            ).encode()
            barrier.wait()
            started = time.perf_counter()
            try:
                with socket.create_connection((host, port), timeout=60) as s:
                    s.sendall(req)
                    data = b""
                    while chunk := s.recv(65536):
                        data += chunk
                answers[i] = data.split(b"\r\n", 1)[0]
            except OSError as e:
                answers[i] = e
            latencies[i] = time.perf_counter() - started

        threads = [threading.Thread(target=post, args=(i,)) for i in range(n_posts)]
        started = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        took = time.perf_counter() - started
        ok = sum(1 for a in answers if a == b"HTTP/1.1 200 OK")
        latencies.sort()
        print(
            f"{n_posts} concurrent one-click POSTs: {ok} answered 200, {n_posts - ok} failed; "
            f"{took:.2f} s ({n_posts / took:.0f}/s), p50 {latencies[len(latencies) // 2] * 1000:.0f} ms, "
            f"p99 {latencies[int(len(latencies) * 0.99) - 1] * 1000:.0f} ms (each fully synced to disk)"
        )
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


if __name__ == "__main__":
    main()
