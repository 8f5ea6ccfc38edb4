"""An activity's contract: the name it is registered under, the input it takes and the result
it gives, so a workflow calls it by a typed handle and never imports the code behind it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

In = TypeVar("In")
Out = TypeVar("Out")


@dataclass(frozen=True)
class Activity(Generic[In, Out]):
    """`name` starts with the module of activities/ that implements it: `github.*` lives in
    activities/github.py. `gives` is the result's type, None for an activity that gives none."""

    name: str
    gives: type[Out] | None = None
