"""``@traced``: record a function call as a span of the current session."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar, overload

from ._session import EVENT_KINDS, current_session

P = ParamSpec("P")
R = TypeVar("R")


@overload
def traced(func: Callable[P, R], /) -> Callable[P, R]: ...


@overload
def traced(
    *, kind: str = "tool", name: str | None = None, capture: bool = True
) -> Callable[[Callable[P, R]], Callable[P, R]]: ...


def traced(
    func: Callable[P, R] | None = None,
    /,
    *,
    kind: str = "tool",
    name: str | None = None,
    capture: bool = True,
) -> Callable[P, R] | Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorate a sync or async function so each call is a span of the current session.

    The session is the innermost ``with client.session(...)`` (or ``async with``) in
    the calling context; outside one, the function runs untraced. Each call logs a
    ``running`` event and a final event with ``duration_ms`` (ms) and the result, or
    ``status="error"`` with the exception (which propagates).

    Args:
        func: The function, when used bare as ``@traced``.
        kind: Event kind (default ``tool``).
        name: Event name (default the function's ``__qualname__``).
        capture: Record arguments as ``input`` (``{"args": [...], "kwargs": {...}}``)
            and the return value as ``output``; set ``False`` for secrets or bulk data.

    Raises:
        ValueError: Unknown ``kind`` (at decoration time).

    Example:
        >>> @traced(kind="tool")  # doctest: +SKIP
        ... def search(query: str) -> list[str]: ...
    """
    if kind not in EVENT_KINDS:
        raise ValueError(f"unknown event kind {kind!r}")

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        label = name or fn.__qualname__

        def inputs(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            return {"args": list(args), "kwargs": kwargs} if capture else None

        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
                session = current_session()
                if session is None:
                    return await fn(*args, **kwargs)
                with session.span(kind, label, input=inputs(args, kwargs)) as span:
                    result = await fn(*args, **kwargs)
                    if capture:
                        span.set_output(result)
                    return result

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            session = current_session()
            if session is None:
                return fn(*args, **kwargs)
            with session.span(kind, label, input=inputs(args, kwargs)) as span:
                result = fn(*args, **kwargs)
                if capture:
                    span.set_output(result)
                return result

        return wrapper

    if func is not None:
        return decorate(func)
    return decorate
