"""Mapped children's targets on an object store: one bulk check, then all read at once."""

from __future__ import annotations

import uuid
from collections import Counter

from counting_proxy import CountingProxy
from resultkit import Flow, task
from resultkit.results import S3Result


def test_a_warm_mapped_flow_on_s3_reads_each_child_once_and_checks_in_bulk(moto_server):
    ran = Counter[int]()

    @task(target="sq/{map_index}.pkl")
    def square(x):
        ran[x] += 1
        return x * x

    with CountingProxy(moto_server.port) as proxy:
        r = S3Result(
            "rk-batches",
            prefix=uuid.uuid4().hex,
            endpoint_url=proxy.url,
            storage_options={"skip_instance_cache": True},
        )
        if not r.fs.exists("rk-batches"):
            r.fs.mkdir("rk-batches")
        with Flow("batches", result=r, run_store="off") as flow:
            out = square.map(list(range(20)))
        assert flow.run().result[out].result == [i * i for i in range(20)]
        proxy.clear()
        proxy.latency_ms = 50  # a slow link: reads in turn would never overlap
        state = flow.run()
        assert state.result[out].result == [i * i for i in range(20)]
        assert all(s.is_cached() for s in state.result[out].map_states)
        assert ran == Counter(range(20))  # no body ran again
        gets = Counter(p for m, p in proxy.requests if m == "GET" and "/sq/" in p)
        assert len(gets) == 20 and set(gets.values()) == {1}, proxy.requests  # one read each
        assert not [p for m, p in proxy.requests if m in ("PUT", "POST", "DELETE")]
        assert proxy.max_in_flight > 1  # the children's reads went out together
