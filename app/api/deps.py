"""Dependencies shared by the routes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request

from app.gates import GateService, service_scope


def _service(request: Request) -> Iterator[GateService]:
    """Yield a gate service whose session commits before the response is sent."""
    state = request.app.state
    with service_scope(state.database, state.store, state.settings) as service:
        yield service


# scope="function" closes the session when the route returns, so a failed
# commit becomes an error response instead of happening after a 200 was sent.
ServiceDep = Annotated[GateService, Depends(_service, scope="function")]
