"""Peak memory of fetching compression bombs: a feed and a share image.

    python benchmarks/bombs.py [MiB]     # default 1024: each bomb inflates to 1 GiB

Serves each bomb from 127.0.0.1 and fetches it in a fresh process (HttpClient.get for
a feed, Channel.fetch_image for an image), printing the answer and the process's peak
resident memory (VmHWM).  The same cases, at 512 MiB, are asserted in
tests/test_decompression_bombs.py.
"""

from __future__ import annotations

import gzip
import http.server
import subprocess
import sys
import tempfile
import textwrap
import threading
import zlib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MiB = 1024 * 1024

PEAK = """
def peak_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
"""

FEED = PEAK + textwrap.dedent(
    """
    import sys
    from distrib.http import FetchError, HttpClient
    with HttpClient(max_bytes=20_000_000) as http:
        try:
            answer = f"{len(http.get(sys.argv[1]).body)} bytes"
        except FetchError as e:
            answer = str(e).split(" from ")[0]
    print(f"{peak_mb():6.1f} MB  {answer}")
    """
)

IMAGE = PEAK + textwrap.dedent(
    """
    import logging, sys
    from pathlib import Path
    from tests.channels.conftest import Env
    logging.disable(logging.CRITICAL)
    _, [channel] = Env(Path(sys.argv[2]), None).channels({"name": "o", "type": "outbox"})
    got = channel.fetch_image(sys.argv[1], 5_000_000)
    print(f"{peak_mb():6.1f} MB  {'dropped' if got is None else len(got[0])}")
    """
)


def bombs(size: int) -> dict[str, tuple[bytes, str]]:
    zeros = bytes(MiB)
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    inner = b"".join(packer.compress(zeros) for _ in range(size // MiB)) + packer.flush()
    out = {"gzip, gzip": (gzip.compress(inner, 9), "gzip, gzip"), "gzip": (inner, "gzip")}
    try:
        import zstandard

        z = zstandard.ZstdCompressor(level=19).compressobj()
        out["zstd"] = (b"".join(z.compress(zeros) for _ in range(size // MiB)) + z.flush(), "zstd")
    except ImportError:
        pass
    return out


def main() -> None:
    size = int(sys.argv[1]) * MiB if len(sys.argv) > 1 else 1024 * MiB
    cases = bombs(size)
    current: dict[str, tuple[bytes, str, str]] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            body, encoding, ctype = current["answer"]
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Encoding", encoding)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/x"
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for name, (body, encoding) in cases.items():
                for kind, code, ctype in (
                    ("feed", FEED, "application/rss+xml"),
                    ("image", IMAGE, "image/png"),
                ):
                    current["answer"] = (body, encoding, ctype)
                    out = subprocess.run(
                        [sys.executable, "-c", code, url, tmp],
                        capture_output=True,
                        text=True,
                        cwd=REPO,
                    )
                    line = out.stdout.strip() or out.stderr.strip().splitlines()[-1]
                    print(f"{kind:5}  {name:10} {len(body):>9,} B -> {size // MiB} MiB: {line}")
    finally:
        server.shutdown()


if __name__ == "__main__":
    main()
