"""Every resultkit error pickles: an error raised in a worker process reaches its parent."""

from __future__ import annotations

import multiprocessing
import pickle

import pytest

from resultkit import errors
from resultkit.results import BatchError, LocalResult


def _read_missing(folder: str) -> object:
    return LocalResult(dir=folder).read_many(["missing.pkl"])


def test_a_batch_error_raised_in_a_pool_worker_reaches_the_parent(tmp_path):
    """Unpicklable, it killed the pool's result thread and the parent's map never returned."""
    with multiprocessing.get_context("fork").Pool(1) as pool:
        pending = pool.map_async(_read_missing, [str(tmp_path)])
        with pytest.raises(BatchError) as caught:
            pending.get(timeout=60)
    assert "missing.pkl" in str(caught.value)
    assert isinstance(caught.value.failures[0][1], errors.ResultNotFoundError)


@pytest.mark.parametrize(
    "error",
    [
        errors.MissingTemplateKeyError("no key 'day'", key="day", given=["x"], location="{day}"),
        errors.SerializerMismatchError(
            "written by json", location="a.pkl", written_by="json", reading_with="pickle"
        ),
        errors.ResultNotFoundError("nothing at a.pkl", location="a.pkl"),
        errors.StorageAccessError("denied", location="s3://b/a.pkl"),
        errors.ConfigurationError("bad option"),
    ],
)
def test_errors_keep_their_class_message_and_attributes(error):
    again = pickle.loads(pickle.dumps(error))
    assert type(again) is type(error)
    assert str(again) == str(error)
    assert again.__dict__ == error.__dict__
