"""S3Result's requests on the default engine (s3fs): how many, and what each carries.

The client is set up for little CPU a request (``results/_s3client.py``): no
CRC32 of every body, no client-side parameter checks, a fixed User-Agent,
``Last-Modified`` parsed without dateutil. These tests check that each
default reaches the wire, that a user's ``config_kwargs`` still win, and
that a batch costs exactly one request an item.
"""

from __future__ import annotations

import contextlib
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from botocore.utils import parse_timestamp as botocore_parse_timestamp
from fsspec.asyn import sync
from hypothesis import given, settings
from hypothesis import strategies as st

import resultkit
from counting_proxy import CountingProxy
from resultkit.results import S3Result, from_url
from resultkit.results._s3client import parse_timestamp

BUCKET = "rk-requests"


def _result(endpoint: str, how: str = "S3Result", **config: Any) -> Any:
    # A client of its own: the recorder below must not reach other tests' clients.
    options = {"skip_instance_cache": True, "config_kwargs": config}
    if how == "from_url":  # the same client defaults for an s3:// URL
        r = from_url(f"s3://{BUCKET}/{uuid.uuid4().hex}", endpoint_url=endpoint, **options)
    else:
        r = S3Result(
            BUCKET, prefix=uuid.uuid4().hex, endpoint_url=endpoint, storage_options=options
        )
    if not r.fs.exists(BUCKET):
        with contextlib.suppress(FileExistsError):
            r.fs.mkdir(BUCKET)
    return r


def _record_headers(r: S3Result) -> list[dict[str, str]]:
    """The headers of every request the client sends from now on (botocore's last hook)."""
    sent: list[dict[str, str]] = []
    fs: Any = r.fs
    client = sync(fs.loop, fs.set_session)

    def record(request: Any, **kwargs: Any) -> None:
        sent.append({k.lower(): _text(v) for k, v in request.headers.items()})

    client.meta.events.register_last("before-send.s3", record)
    return sent


def _param_checked(r: S3Result) -> bool:
    """Whether botocore checks parameters before sending (an int where a string belongs)."""
    from botocore.exceptions import ClientError, ParamValidationError

    bucket, key = r.storage._split(r.storage.path("a.pkl"))
    try:
        sync(r.fs.loop, r.fs._s3.head_object, Bucket=bucket, Key=key, IfMatch=5)
    except ParamValidationError:
        return True
    except ClientError:  # sent: the server answered 412 for the ETag "5"
        return False
    raise AssertionError("a HEAD with IfMatch=5 succeeded")


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


@pytest.mark.parametrize("how", ["S3Result", "from_url"])
def test_a_batch_is_one_request_an_item(moto_server, how):
    with CountingProxy(moto_server.port) as proxy:
        r = _result(proxy.url, how)
        r.write(0, "warm.pkl")  # the client and its connections
        proxy.clear()
        written = r.write_many({f"ckpt/{i}.pkl": {"i": i} for i in range(6)})
        assert proxy.methods() == ["PUT"] * 6, proxy.requests  # no HEAD, no info(), no listing
        proxy.clear()
        values = [x.value for x in r.read_many([w.location for w in written])]
        assert values == [{"i": i} for i in range(6)]
        assert proxy.methods() == ["GET"] * 6, proxy.requests


@pytest.mark.parametrize("how", ["S3Result", "from_url"])
def test_defaults_reach_the_wire(moto_server, how):
    r = _result(moto_server.url, how)
    sent = _record_headers(r)
    r.write({"rows": 3}, "a.pkl")
    assert r.read("a.pkl").value == {"rows": 3}
    assert r.exists("a.pkl")
    put, get, head = sent
    # No CRC32 computed for the PUT nor asked for on the GET: the record's
    # XXH3-128 digest is what a read verifies.
    assert not [h for h in put if h.startswith("x-amz-checksum") or "sdk-checksum" in h], put
    assert "x-amz-checksum-mode" not in get, get
    # Over http the body stays covered by the SigV4 signature.
    assert put["x-amz-content-sha256"] not in ("UNSIGNED-PAYLOAD", ""), put
    assert "expect" not in put  # small PUTs wait for no "100 Continue"
    for headers in (put, get, head):
        assert headers["user-agent"].startswith(f"resultkit/{resultkit.__version__} ")
    assert r.fs._s3.meta.config.max_pool_connections == 64
    # No client-side check of parameters: a wrong type goes to the server, which refuses it.
    assert _param_checked(r) is False


def test_user_config_kwargs_override_every_default(moto_server):
    r = _result(
        moto_server.url,
        parameter_validation=True,
        request_checksum_calculation="when_supported",
        response_checksum_validation="when_supported",
        user_agent="my-pipeline/2.0",
        max_pool_connections=5,
    )
    sent = _record_headers(r)
    r.write({"rows": 3}, "a.pkl")
    assert r.read("a.pkl").value == {"rows": 3}
    put, get = sent
    assert any(h.startswith("x-amz-checksum-") for h in put), put  # botocore's CRC32 is back
    assert get.get("x-amz-checksum-mode") == "ENABLED", get
    assert put["user-agent"].startswith("my-pipeline/2.0"), put["user-agent"]
    assert r.fs._s3.meta.config.max_pool_connections == 5
    assert _param_checked(r) is True
    # user_agent=None: botocore's own header again.
    r2 = _result(moto_server.url, user_agent=None)
    sent2 = _record_headers(r2)
    r2.write(1, "b.pkl")
    assert not sent2[0]["user-agent"].startswith("resultkit/"), sent2[0]["user-agent"]


def test_naming_an_application_keeps_botocores_user_agent(moto_server):
    r = _result(moto_server.url, user_agent_appid="nightly-etl")
    sent = _record_headers(r)
    r.write(1, "a.pkl")
    assert "app/nightly-etl" in sent[0]["user-agent"], sent[0]["user-agent"]


def test_last_modified_is_parsed_as_botocore_would(moto_server):
    r = _result(moto_server.url)
    before = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(seconds=5)
    r.write(1, "a.pkl")
    client = r.fs._s3
    bucket, key = r.storage._split(r.storage.path("a.pkl"))
    head = sync(r.fs.loop, client.head_object, Bucket=bucket, Key=key)
    modified = head["LastModified"]
    assert type(modified.tzinfo).__name__ == "tzutc"  # what dateutil gives botocore
    assert before <= modified <= datetime.now(timezone.utc) + timedelta(seconds=5)
    assert modified == botocore_parse_timestamp(
        head["ResponseMetadata"]["HTTPHeaders"]["last-modified"]
    )


@settings(max_examples=100, deadline=None)
@given(st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(9999, 12, 31)))
def test_http_dates_parse_exactly_as_botocore_parses_them(when):
    text = when.strftime("%a, %d %b %Y %H:%M:%S GMT")  # the C locale's names
    ours, theirs = parse_timestamp(text), botocore_parse_timestamp(text)
    assert ours == theirs and type(ours.tzinfo) is type(theirs.tzinfo)


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-26T01:02:03.000Z",  # listings' form: botocore's own parser
        "2026-11-26T01:02:03+01:00",
        "1764118923",
        "26 Nov 2026 01:02:03 GMT",
        "Wed, 26 Nov 2026 01:02:03 +0000",
    ],
)
def test_other_timestamps_parse_as_botocore_parses_them(text):
    ours, theirs = parse_timestamp(text), botocore_parse_timestamp(text)
    assert ours == theirs and type(ours.tzinfo) is type(theirs.tzinfo)


@pytest.mark.parametrize("text", ["Wed, 31 Feb 2026 01:02:03 GMT", "Wed, 01 Foo 2026 01:02:03 GMT"])
def test_impossible_dates_are_botocores_error(text):
    with pytest.raises(ValueError) as ours:
        parse_timestamp(text)
    with pytest.raises(ValueError) as theirs:
        botocore_parse_timestamp(text)
    assert str(ours.value) == str(theirs.value)


def test_an_application_named_in_the_environment_keeps_botocores_user_agent(monkeypatch):
    from resultkit.results._s3client import client_config

    assert client_config(None)["user_agent"] == f"resultkit/{resultkit.__version__}"
    monkeypatch.setenv("AWS_SDK_UA_APP_ID", "nightly-etl")
    assert "user_agent" not in client_config(None)
    assert "user_agent" not in S3Result("b").fs.config_kwargs


def test_a_misspelt_client_option_is_refused_when_the_result_is_made():
    from resultkit.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match=r"did you mean 'max_pool_connections'"):
        S3Result("b", storage_options={"config_kwargs": {"max_pool_conections": 8}})
    # aiobotocore's own options pass, as botocore's do
    made = S3Result("b", storage_options={"config_kwargs": {"connector_args": {"limit": 4}}})
    assert made.fs.config_kwargs["connector_args"] == {"limit": 4}
