"""Label and field selectors, parsed and matched as the Kubernetes API server does."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any


class SelectorError(ValueError):
    """The selector does not parse; the server answers 400 BadRequest."""


@dataclass(frozen=True)
class Requirement:
    key: str
    operator: str  # "=", "!=", "in", "notin", "exists", "!exists"
    values: tuple[str, ...] = ()

    def matches(self, labels: dict[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.operator == "exists":
            return present
        if self.operator == "!exists":
            return not present
        if self.operator in ("=", "in"):
            return present and value in self.values
        # "!=" and "notin" match objects without the label too, as in Kubernetes.
        return value not in self.values


_TOKEN = re.compile(r"\s*(!=|==|=|\(|\)|,|!|[^\s!=(),]+)")


def parse_label_selector(text: str) -> list[Requirement]:
    tokens = [token for token in _TOKEN.findall(text) if token.strip()]
    requirements: list[Requirement] = []
    position = 0

    def take() -> str:
        nonlocal position
        if position >= len(tokens):
            raise SelectorError(f"unable to parse requirement: unexpected end of {text!r}")
        token = tokens[position]
        position += 1
        return token

    def peek() -> str | None:
        return tokens[position] if position < len(tokens) else None

    while position < len(tokens):
        token = take()
        if token == "!":
            requirements.append(Requirement(take(), "!exists"))
        else:
            key = token
            following = peek()
            if following in ("=", "==", "!="):
                operator = "!=" if take() == "!=" else "="
                value = ""
                if peek() not in (",", None):
                    value = take()
                requirements.append(Requirement(key, operator, (value,)))
            elif following in ("in", "notin"):
                operator = take()
                if take() != "(":
                    raise SelectorError(f"found {tokens[position - 1]!r}, expected '(' in {text!r}")
                values: list[str] = []
                while (token := take()) != ")":
                    if token != ",":
                        values.append(token)
                requirements.append(Requirement(key, operator, tuple(values)))
            else:
                requirements.append(Requirement(key, "exists"))
        if peek() is not None and take() != ",":
            raise SelectorError(f"unable to parse requirement: expected ',' in {text!r}")
    return requirements


def labels_match(requirements: list[Requirement], labels: dict[str, str] | None) -> bool:
    return all(requirement.matches(labels or {}) for requirement in requirements)


SUPPORTED_FIELDS = {
    "metadata.name",
    "metadata.namespace",
    "status.phase",
    "spec.nodeName",
    "type",
    "reason",
    "involvedObject.kind",
    "involvedObject.name",
    "involvedObject.namespace",
    "involvedObject.uid",
}


def parse_field_selector(text: str) -> list[Requirement]:
    requirements = []
    for part in filter(None, (piece.strip() for piece in text.split(","))):
        match = re.fullmatch(r"([^!=]+)(==|!=|=)(.*)", part)
        if match is None:
            raise SelectorError(f"invalid selector: {part!r}; can't understand {part!r}")
        field, operator, value = match.groups()
        if field not in SUPPORTED_FIELDS:
            raise SelectorError(f'field label not supported: "{field}"')
        requirements.append(Requirement(field, "!=" if operator == "!=" else "=", (value,)))
    return requirements


def fields_match(requirements: list[Requirement], obj: dict[str, Any]) -> bool:
    for requirement in requirements:
        node: Any = obj
        for part in requirement.key.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        value = "" if node is None else str(node)
        if (value == requirement.values[0]) != (requirement.operator == "="):
            return False
    return True
