"""Real server processes for the tests, the conformance run and the benchmarks.

Only loopback addresses, free ports picked by the OS, nothing kept on disk.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import tempfile
import time
from types import TracebackType

import redis

INSTALL_HINT = (
    "Install a Redis server (Debian/Ubuntu: apt-get install redis-server) so "
    "that a private redis-server can be started on a free loopback port."
)


def free_port() -> int:
    """A loopback TCP port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """Stop a server process: ``SIGTERM``, then ``SIGKILL`` after 10 seconds."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


class RedisProcess:
    """A private ``redis-server`` that keeps nothing on disk.

    It can be killed, paused (``SIGSTOP``: the process keeps its data but
    answers nothing, like a network partition) and started again on the same
    port, which is what the fault tests do.
    """

    def __init__(self, port: int | None = None) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError(f"redis-server was not found. {INSTALL_HINT}")
        self.binary = binary
        self.port = port or free_port()
        self.workdir = tempfile.mkdtemp(prefix="sessionkit-redis-")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10) -> RedisProcess:
        """Start the server and wait until it answers."""
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self.workdir,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + timeout
        while True:
            try:
                client.ping()
                return self
            except redis.ConnectionError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"redis-server on port {self.port} did not start."
                    ) from None
                time.sleep(0.02)
            finally:
                client.close()

    def kill(self) -> None:
        """Kill the server at once (``SIGKILL``): its data is lost."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def pause(self) -> None:
        """Freeze the server: connections hang, data is kept."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """Thaw a paused server."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        """Stop the server and remove its directory."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            self.proc.wait(timeout=10)
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> RedisProcess:
        # A server started already is only stopped on leaving.
        if self.proc is None or self.proc.poll() is not None:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
