"""A real HTTP reverse proxy on 127.0.0.1 that records every request it forwards.

Used to count the requests a backend sends (one HEAD for ``exists``...)
without mocking anything: the client talks HTTP to the proxy, the proxy to
the emulator. It is :class:`fault_proxy.FaultProxy` with no faults scripted,
its requests seen as ``(method, path)`` pairs.
"""

from __future__ import annotations

from typing import Any

from fault_proxy import FaultProxy, read_request_body

__all__ = ["CountingProxy", "read_request_body"]


class CountingProxy(FaultProxy):
    """Forwards everything; ``requests`` lists ``(method, path)`` in order of arrival.

    ``latency_ms`` slows every request (a slow link); ``max_in_flight`` is the
    most requests the proxy held at once since the last ``clear()``.
    """

    @property
    def requests(self) -> list[tuple[str, str]]:
        return self.calls()

    def methods(self) -> list[str]:
        return [m for m, _ in self.calls()]

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "delay":  # the old attribute: a float here would silently add no latency
            raise AttributeError("CountingProxy has no `delay`: set `latency_ms` (milliseconds)")
        super().__setattr__(name, value)
