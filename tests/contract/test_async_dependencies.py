"""Every endpoint and dependency of every app is async: FastAPI runs a plain ``def`` one in a
worker thread, a thread hop on every request (found by profiling: a settings getter cost the
orders app 3% of its CPU)."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from .documents import app_factories


def _calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    if dependant.call is not None:
        yield dependant.call
    for dependency in dependant.dependencies:
        yield from _calls(dependency)


def _api_routes(routes: Sequence[Any]) -> Iterator[APIRoute]:
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        elif (included := getattr(route, "original_router", None)) is not None:
            yield from _api_routes(included.routes)  # an included router, wrapped


# Built in a thread too, and allowed: it serves login only, whose Argon2 check (itself in a
# thread, on purpose) costs a thousand times the hop.
ALLOWED = {"OAuth2PasswordRequestForm"}


def _runs_on_the_loop(call: Callable[..., Any]) -> bool:
    # A function or method as it is; an object (HTTPBearer) by its __call__; a class by
    # type.__call__, which is how FastAPI sees it too.
    target = call if inspect.isroutine(call) else type(call).__call__
    return inspect.iscoroutinefunction(target) or inspect.isasyncgenfunction(target)


def test_no_endpoint_or_dependency_runs_in_a_thread() -> None:
    routes = [
        (name, route)
        for name, factory in app_factories().items()
        for route in _api_routes(factory().routes)
    ]
    threaded = [
        f"{name} {route.path}: {getattr(call, '__qualname__', call)!r}"
        for name, route in routes
        for call in _calls(route.dependant)
        if not _runs_on_the_loop(call) and getattr(call, "__qualname__", "") not in ALLOWED
    ]
    assert len(routes) > 20  # the walk reached the included routers
    assert threaded == []
