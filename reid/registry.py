"""Name -> object registries: the one place a choice (a dataset format, a protocol, a loss, a
backbone, an aggregation, ...) becomes valid.

A module that defines choices owns its registry; adding a choice is one function plus one
``@REGISTRY.register("name")`` line. Configs and CLIs validate names against the registry
(``registry.check(name, key="loss.metric.name")``), so no list of names is ever typed twice::

    AGGREGATORS = Registry("aggregation")

    @AGGREGATORS.register("mean")
    def _mean(dim): ...

    AGGREGATORS.get("mean")        # the builder
    AGGREGATORS.check("meen", key="model.aggregation")
    # UnknownChoiceError: model.aggregation: unknown aggregation 'meen' (choices: mean, max, ...).
    #                     Did you mean 'mean'?
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Generic, TypeVar

from reid.errors import UserError

T = TypeVar("T")


class UnknownChoiceError(UserError, ValueError):
    """A name is not in its registry. The message names the key (when given), the bad name, the
    valid choices and the closest one."""


class Registry(Mapping[str, T], Generic[T]):
    """An ordered, read-mostly mapping ``name -> object`` with a decorator to add entries.

    Args:
        kind: what the entries are, in words ("dataset format", "protocol"); used in messages.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str, obj: T | None = None) -> Callable[[T], T] | T:
        """``@registry.register("name")`` above a definition, or ``registry.register("name", obj)``.
        Registering a name twice is an error (two definitions of one choice)."""

        def add(value: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} '{name}' is registered twice")
            self._entries[name] = value
            return value

        return add(obj) if obj is not None else add

    def check(self, name: Any, key: str | None = None, also: tuple[str, ...] = ()) -> str:
        """Return ``name`` if registered (or one of ``also``: extra values a caller accepts, such
        as a config's ``none``), else raise :class:`UnknownChoiceError` listing them all."""
        if isinstance(name, str) and (name in self._entries or name in also):
            return name
        where = f"{key}: " if key else ""
        choices = [*also, *self._entries]
        close = difflib.get_close_matches(str(name), choices, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise UnknownChoiceError(f"{where}unknown {self.kind} {name!r} (choices: {', '.join(choices)}).{hint}")

    def get(self, name: str, key: str | None = None) -> T:  # type: ignore[override]
        """The entry for ``name``; :class:`UnknownChoiceError` naming the choices otherwise."""
        return self._entries[self.check(name, key)]

    def names(self) -> tuple[str, ...]:
        return tuple(self._entries)

    def __getitem__(self, name: str) -> T:
        return self.get(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self._entries)})"


__all__ = ["Registry", "UnknownChoiceError"]
