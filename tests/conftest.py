"""Shared fixtures: real storage emulators on 127.0.0.1 (session-scoped)."""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
from collections.abc import Iterator

# Before any cloud client is imported: dummy credentials, no metadata-server
# lookups, and no gRPC probe the GCS emulator lacks (see shared/EMULATORS.md).
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
os.environ["GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT"] = "false"
# Output caches and run records of the tests go to folders of this process,
# never to the developer's ~/.resultkit (tests clear caches). Each xdist
# worker gets its own: it inherits the controller's variables, and one
# worker clearing a shared cache would fail the other's tests.
for _var, _prefix in (("RESULTKIT_CACHE_STORE", "cache"), ("RESULTKIT_RUN_STORE", "runs")):
    if os.environ.get("PYTEST_XDIST_WORKER") or _var not in os.environ:
        os.environ[_var] = tempfile.mkdtemp(prefix=f"resultkit-test-{_prefix}-")

# A suite started in the background of a script (`cmd &`) inherits SIGINT
# ignored, and Python then installs no handler: the tests of Ctrl-C
# (`_thread.interrupt_main()`) would see no KeyboardInterrupt. Give the
# process Python's own handler, as in a terminal.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

import pytest  # noqa: E402

import emulators  # noqa: E402
from counting_proxy import CountingProxy  # noqa: E402

SEAWEED_KEY = "resultkit-test-key"
SEAWEED_SECRET = "resultkit-test-secret-value"


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory):
    server = emulators.moto(tmp_path_factory.mktemp("moto")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def gcs_server(tmp_path_factory):
    server = emulators.fake_gcs(tmp_path_factory.mktemp("gcs")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def azurite_server(tmp_path_factory):
    server = emulators.azurite(tmp_path_factory.mktemp("azurite")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def seaweed_server(tmp_path_factory):
    server = emulators.seaweedfs(
        tmp_path_factory.mktemp("seaweed"), SEAWEED_KEY, SEAWEED_SECRET
    ).start()
    yield server
    server.stop()


@pytest.fixture
def fresh_caches():
    """The output cache store of the runs, emptied before and after the test."""
    from resultkit import context

    context.caches.clear()
    yield
    context.caches.clear()


class Counter:
    """Counts its calls (a task body's side effect)."""

    def __init__(self):
        self.n = 0

    def __call__(self):
        self.n += 1


@pytest.fixture
def tmpfs(tmp_path):
    """A factory: ``tmpfs("5m")`` mounts a real tmpfs of that size (tests run as root).

    For full-disk tests; every mount is unmounted after the test (after any
    replaced payload still being freed has been, so the mount is not busy).
    """
    from resultkit.results import _localio

    mounts = []

    def mount(size: str):
        folder = tmp_path / f"tmpfs-{len(mounts)}"
        folder.mkdir()
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, f"mounting a tmpfs failed: {done.stderr}"
        mounts.append(folder)
        return folder

    yield mount
    _localio.wait_for_releases()
    for folder in mounts:
        subprocess.run(["umount", str(folder)], check=True)


@pytest.fixture(scope="module")
def _s3_proxy(moto_server: emulators.Emulator) -> Iterator[CountingProxy]:
    """A counting proxy to moto, one per test module (its S3 client stays warm)."""
    with CountingProxy(moto_server.port) as proxy:
        yield proxy


@pytest.fixture
def s3_proxy(_s3_proxy: CountingProxy) -> Iterator[CountingProxy]:
    """The module's proxy to moto, without faults or latency left by another test."""
    _s3_proxy.heal()
    yield _s3_proxy
    _s3_proxy.heal()
