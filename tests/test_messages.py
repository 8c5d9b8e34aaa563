"""Messages a newcomer meets: each names what was wrong and how to fix it (real servers)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest

import emulators
from resultkit.errors import (
    ConfigurationError,
    ResultError,
    StorageError,
)
from resultkit.results import AzureResult, GCSResult, LocalResult, MemoryResult, S3Result


def test_read_without_a_location_says_so(tmp_path):
    r = LocalResult(dir=tmp_path)
    for call in (r.read, r.exists, r.stat, r.delete):
        with pytest.raises(ResultError, match=r"needs a location"):
            call()


def test_unknown_keywords_suggest_the_near_name(tmp_path):
    with pytest.raises(ConfigurationError, match=r"'directory' \(did you mean 'dir'\?\)"):
        LocalResult(directory=tmp_path)  # type: ignore[call-arg]
    with pytest.raises(ConfigurationError, match=r"did you mean 'serializer'\?\)"):
        MemoryResult(serialiser=None)  # type: ignore[call-arg]
    with pytest.raises(ConfigurationError, match=r"did you mean 'endpoint_url'\?\)"):
        S3Result("b", endpoint="http://x")  # type: ignore[call-arg]


def test_missing_bucket_on_read_names_the_bucket(moto_server, gcs_server, azurite_server):
    name = f"missing-{uuid.uuid4().hex[:12]}"
    results = [
        S3Result(name, endpoint_url=moto_server.url),
        GCSResult(name, endpoint_url=gcs_server.url, token="anon", project="test"),
        AzureResult(
            name, connection_string=emulators.azurite_connection_string(azurite_server.port)
        ),
    ]
    for r in results:
        with pytest.raises(StorageError, match=rf"{name}' does not exist") as info:
            r.read("x.pkl")
        assert "Create it first" in str(info.value), r


def test_missing_s3_credentials_name_the_ways_to_give_them(moto_server, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"),
        AWS_CONFIG_FILE=str(tmp_path / "none"),
        AWS_EC2_METADATA_DISABLED="true",
        AWS_DEFAULT_REGION="us-east-1",
    )
    code = (
        "from resultkit.results import S3Result\n"
        "from resultkit.errors import StorageAccessError\n"
        f"r = S3Result('b', endpoint_url={moto_server.url!r})\n"
        "try:\n"
        "    r.read('x.pkl')\n"
        "except StorageAccessError as exc:\n"
        "    print('ERR', exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert "ERR no credentials were found" in out.stdout
    assert "AWS_ACCESS_KEY_ID" in out.stdout and "storage_options" in out.stdout


def test_azure_builds_without_credentials_and_says_so_at_first_use(monkeypatch):
    monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING", raising=False)
    monkeypatch.delenv("AZURE_STORAGE_ACCOUNT_NAME", raising=False)
    r = AzureResult("container", location="{x}.pkl")  # a flow can be built anywhere
    S3Result("bucket")
    GCSResult("bucket")
    with pytest.raises(ConfigurationError, match="AZURE_STORAGE_CONNECTION_STRING"):
        r.write(1, x=1)


def test_missing_extra_names_the_pip_extra():
    code = (
        "import sys; sys.modules['gcsfs'] = None\n"  # as if gcsfs were not installed
        "from resultkit.errors import ConfigurationError\n"
        "from resultkit.results import GCSResult, from_url\n"
        "for build in (lambda: GCSResult('b'), lambda: from_url('gs://b/p')):\n"
        "    try:\n"
        "        build()\n"
        "    except ConfigurationError as exc:\n"
        "        print('ERR', exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("pip install 'resultkit[gcs]'") == 2, out.stdout


def test_storage_errors_never_say_serializer_when_the_disk_fails(tmp_path):
    """A sink failure while a serializer streams is a StorageError naming the location."""

    class FailingWriter:
        def __init__(self) -> None:
            self.aborted = False

        def write(self, data):
            raise OSError(28, "No space left on device")

        def commit(self, metadata):  # pragma: no cover - never reached
            raise AssertionError

        def abort(self):
            self.aborted = True

    r = LocalResult(dir=tmp_path)
    r.write("old", location="full.pkl")
    writer = FailingWriter()
    r.storage.open_writer = lambda key: writer  # type: ignore[method-assign]
    with pytest.raises(StorageError, match=r"no space left.*full\.pkl|full\.pkl.*no space left"):
        r.write(list(range(10)), location="full.pkl")
    assert writer.aborted
    del r.storage.open_writer
    assert r.read("full.pkl").value == "old"


def test_misspelt_serializer_and_task_keywords_name_the_near_one():
    from resultkit import Task, task
    from resultkit.serializers import CompressedSerializer, JSONSerializer, PickleSerializer

    for build, near in (
        (lambda: JSONSerializer(indnt=2), "indent"),
        (lambda: PickleSerializer(protocl=5), "protocol"),
        (lambda: CompressedSerializer(fromat="gzip"), "format"),
        (lambda: Task(max_retry=2), "max_retries"),
        (lambda: task(max_retry=2)(lambda: 1), "max_retries"),
    ):
        with pytest.raises(ConfigurationError, match=rf"did you mean '{near}'\?"):
            build()


def test_a_storage_without_root_url_is_refused_at_construction():
    from resultkit.results import StorageResult
    from resultkit.results.storage import Storage

    class NoRoot(Storage):
        def put(self, key, data, metadata): ...
        def get(self, key): ...
        def head(self, key): ...
        def delete(self, key): ...
        def list(self, prefix=""): ...

    with pytest.raises(ConfigurationError, match="has no root_url: set self.root_url"):
        StorageResult(NoRoot())


def test_a_template_indexing_a_missing_key_is_a_template_error(tmp_path):
    from resultkit.errors import TemplateError

    with pytest.raises(TemplateError, match="has no key 'k'"):
        LocalResult(dir=tmp_path).write(1, location="m/{x[k]}.txt", x={"j": 1})


def test_missing_bucket_is_never_an_empty_cache_for_exists(moto_server, gcs_server, azurite_server):
    name = f"missing-{uuid.uuid4().hex[:12]}"
    for r in (
        S3Result(name, endpoint_url=moto_server.url),
        GCSResult(name, endpoint_url=gcs_server.url, token="anon", project="test"),
        AzureResult(
            name, connection_string=emulators.azurite_connection_string(azurite_server.port)
        ),
    ):
        for call in (lambda r=r: r.exists("a.pkl"), lambda r=r: r.exists_many(["a", "b"])):
            with pytest.raises(StorageError, match=rf"{name}' does not exist"):
                call()


def test_verify_false_cannot_be_combined_with_a_signing_key(tmp_path):
    with pytest.raises(ConfigurationError, match="cannot honour a signing key"):
        LocalResult(dir=tmp_path, signing_key="k" * 32, verify=False)


@pytest.mark.parametrize("bad", ["a\u2028b.pkl", "a\u0085b.pkl", "a\u202eb.pkl", "x" * 5000])
def test_line_separators_bidi_overrides_and_huge_locations_are_refused(tmp_path, bad):
    from resultkit.errors import UnsafeLocationError

    with pytest.raises(UnsafeLocationError) as info:
        LocalResult(dir=tmp_path).write(1, location=bad)
    assert len(str(info.value)) < 800


def test_a_result_setting_passed_to_read_is_refused_not_taken_for_a_template_key(tmp_path):
    from resultkit.errors import ConfigurationError

    r = LocalResult(dir=tmp_path)
    r.write(1, "a.pkl")
    for call in (
        lambda: r.read("a.pkl", verify=False),
        lambda: r.exists("a.pkl", verify=False),
        lambda: r.write(2, "a.pkl", serializer="json"),
    ):
        with pytest.raises(ConfigurationError, match=r"is a setting of the Result.*copy"):
            call()
    unverified = r.copy()
    unverified.verify = False  # what the message says to do
    assert unverified.read("a.pkl").value == 1
    assert r.read("a.pkl").value == 1  # nothing was written by the refused call


def test_a_local_results_folder_cannot_be_changed_after_it_is_made(tmp_path):
    import pickle

    from resultkit.errors import ConfigurationError

    r = LocalResult(dir=tmp_path / "one")
    with pytest.raises(ConfigurationError, match=r"dir is fixed.*LocalResult\(dir="):
        r.dir = str(tmp_path / "two")
    assert r.write(1, "a.pkl").location.startswith((tmp_path / "one").as_uri())
    assert pickle.loads(pickle.dumps(r)).dir == r.dir == r.copy().dir


def test_a_payload_of_another_size_says_so_without_internal_ids(tmp_path):
    from resultkit.errors import ResultCorruptError

    r = LocalResult(dir=tmp_path)
    r.write(b"x" * 100_000, "a.pkl")
    with open(tmp_path / "a.pkl", "ab") as f:
        f.write(b"zz")
    with pytest.raises(ResultCorruptError) as caught:
        r.read("a.pkl")
    message = str(caught.value)
    assert "(not read: the size differs)" in message and "file " not in message.split("found")[1]


def test_newcomer_messages_name_a_fix_that_works(tmp_path):
    """Found by a newcomer: each message's advice is one the API takes."""
    import threading

    from resultkit.errors import ConfigurationError, ResultCorruptError, SerializationError
    from resultkit.results import LocalResult

    r = LocalResult(dir=str(tmp_path))
    (tmp_path / "foreign.pkl").write_bytes(b"x")
    with pytest.raises(ResultCorruptError) as caught:
        r.read("foreign.pkl")
    assert "LocalResult(dir=..., verify=False)" in str(caught.value)
    with pytest.raises(SerializationError) as pickled:
        r.write(threading.Lock(), "lock.pkl")
    assert "Pickle cannot store it" in str(pickled.value)
    assert "PickleSerializer handles" not in str(pickled.value)
    with pytest.raises(ConfigurationError, match="read_many takes a list of locations"):
        r.read_many("a.pkl")


def test_a_missing_target_key_in_a_flow_names_the_flows_ways_to_give_it(tmp_path):
    """In a flow the key comes from an input, a Parameter or the run's context, not
    from ``key=...`` on a write."""
    from resultkit import Flow, Parameter, task
    from resultkit.results import LocalResult

    @task(target="{region}/out.pkl", result=LocalResult(dir=str(tmp_path)))
    def out(x):
        return x

    with Flow("keys") as flow:
        out(1)
    state = flow.run()
    message = str(next(iter(state.result.values())).exception)
    assert "needs the key 'region'" in message
    assert "Parameter('region')" in message and "flow.run(region=...)" in message
    assert "Pass region=" not in message
    with Flow("keys") as fixed:  # each way it names works
        Parameter("region", default="eu")
        out(1)
    assert fixed.run().is_successful()
    assert flow.run(region="us").is_successful()
    assert (tmp_path / "eu" / "out.pkl").exists() and (tmp_path / "us" / "out.pkl").exists()


def test_a_missing_key_in_a_checkpoints_location_names_the_flows_ways_too(tmp_path):
    """The same advice for a checkpoint whose Result's own location needs a key."""
    from resultkit import Flow, task
    from resultkit.results import LocalResult

    @task(checkpoint=True, result=LocalResult(dir=str(tmp_path), location="{region}/c.pkl"))
    def out(x):
        return x

    with Flow("keys") as flow:
        out(1)
    message = str(next(iter(flow.run().result.values())).exception)
    assert "result location '{region}/c.pkl' needs the key 'region'" in message
    assert "Parameter('region')" in message and "Pass region=" not in message
    assert flow.run(region="eu").is_successful()
    assert (tmp_path / "eu" / "c.pkl").exists()
