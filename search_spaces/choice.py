"""``Choice``: one searchable setting with a finite, ordered list of options."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Union

Scalar = Union[int, float, str, bool]


def _same(a: Scalar, b: Scalar) -> bool:
    """Equality that keeps ``True`` apart from ``1`` and ``1`` apart from ``"1"``."""
    return type(a) is type(b) and a == b


@dataclass(frozen=True)
class Choice:
    """A named setting whose value is one of ``options``.

    Options are JSON scalars (int, float, str, bool), unique and non-empty. The first option
    is the *default*: it is the value canonicalisation gives a setting the network ignores.
    Integer encoding (for pymoo and predictors) is the option's index in ``options``.
    """

    name: str
    options: tuple[Scalar, ...]

    def __init__(self, name: str, options) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"Choice name must be a non-empty string, got {name!r}")
        opts = tuple(options)
        if not opts:
            raise ValueError(f"Choice {name!r} needs at least one option, got {list(opts)!r}")
        for opt in opts:
            if not isinstance(opt, (int, float, str, bool)):
                raise ValueError(
                    f"Choice {name!r}: option {opt!r} is a {type(opt).__name__}; "
                    "options must be int, float, str or bool"
                )
            if isinstance(opt, float) and not math.isfinite(opt):
                raise ValueError(f"Choice {name!r}: option {opt!r} is not a finite number (JSON has no NaN/inf)")
        for i, opt in enumerate(opts):
            if any(_same(opt, other) for other in opts[:i]):
                raise ValueError(f"Choice {name!r}: option {opt!r} appears twice in {list(opts)!r}")
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "options", opts)

    @property
    def default(self) -> Scalar:
        return self.options[0]

    def __len__(self) -> int:
        return len(self.options)

    def contains(self, value: object) -> bool:
        return self._index_or_none(value) is not None

    def index(self, value: object) -> int:
        """The option's integer code; ``ValueError`` naming the valid options if absent."""
        idx = self._index_or_none(value)
        if idx is None:
            raise ValueError(f"{self.name}={value!r} is not one of {list(self.options)!r}")
        return idx

    def _index_or_none(self, value: object) -> int | None:
        for i, opt in enumerate(self.options):
            if _same(opt, value):
                return i
        # JSON has one number type: accept 3.0 for an int option 3, and 3 for a float option 3.0.
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            for i, opt in enumerate(self.options):
                if isinstance(opt, (int, float)) and not isinstance(opt, bool) and opt == value:
                    return i
        return None
