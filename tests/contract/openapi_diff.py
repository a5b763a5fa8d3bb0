"""What changed between two OpenAPI documents, and whether a client can be broken by it.

Breaking: a removed path or operation, a removed response field or enum value, a response
field no longer always present, a new required input (parameter or body field), a removed
input a client may send (bodies refuse unknown fields), a changed type. Everything else
(new paths, optional inputs, response fields, enum values, documentation) is additive.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Document = dict[str, Any]
Schema = dict[str, Any]
Direction = Literal["input", "output"]

METHODS = ("get", "put", "post", "delete", "patch", "head", "options")
_MAX_DEPTH = 12


@dataclass(frozen=True)
class Change:
    breaking: bool
    where: str
    what: str

    def __str__(self) -> str:
        return f"{'BREAKING' if self.breaking else 'additive'}: {self.where}: {self.what}"


@dataclass(frozen=True)
class _Side:
    document: Document

    def resolve(self, schema: Schema) -> Schema:
        seen = 0
        while isinstance(schema.get("$ref"), str) and seen < _MAX_DEPTH:
            name = schema["$ref"].rsplit("/", 1)[-1]
            schema = self.document.get("components", {}).get("schemas", {}).get(name, {})
            seen += 1
        return schema

    def kind(self, schema: Schema) -> tuple[str, ...]:
        """The JSON types a schema admits; ``null`` aside, since optionality is judged apart."""
        schema = self.resolve(schema)
        if "type" in schema:
            types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
            return tuple(sorted(t for t in types if t != "null"))
        members = schema.get("anyOf") or schema.get("oneOf") or schema.get("allOf")
        if members:
            return tuple(sorted({t for member in members for t in self.kind(member)}))
        if "properties" in schema:
            return ("object",)
        return ()


def compare(old: Document, new: Document) -> list[Change]:
    """Every change from ``old`` to ``new`` an API client could notice, classified."""
    before, after = _Side(old), _Side(new)
    changes: list[Change] = []
    old_paths: dict[str, Any] = old.get("paths", {})
    new_paths: dict[str, Any] = new.get("paths", {})
    for path in sorted(old_paths.keys() - new_paths.keys()):
        changes.append(Change(True, path, "path removed"))
    for path in sorted(new_paths.keys() - old_paths.keys()):
        changes.append(Change(False, path, "path added"))
    for path in sorted(old_paths.keys() & new_paths.keys()):
        for method in METHODS:
            where = f"{method.upper()} {path}"
            old_op, new_op = old_paths[path].get(method), new_paths[path].get(method)
            if old_op and not new_op:
                changes.append(Change(True, where, "operation removed"))
            elif new_op and not old_op:
                changes.append(Change(False, where, "operation added"))
            elif old_op and new_op:
                changes += _operation(before, after, old_op, new_op, where)
    if not changes and old != new:
        changes.append(Change(False, "document", "documentation or metadata changed"))
    return changes


def _operation(
    before: _Side, after: _Side, old: dict[str, Any], new: dict[str, Any], where: str
) -> list[Change]:
    changes = _parameters(before, after, old, new, where)
    old_body = old.get("requestBody", {}).get("content", {}).get("application/json", {})
    new_body = new.get("requestBody", {}).get("content", {}).get("application/json", {})
    if new_body and not old_body:
        required = new.get("requestBody", {}).get("required", False)
        changes.append(Change(bool(required), f"{where} body", "request body added"))
    elif old_body and not new_body:
        changes.append(Change(True, f"{where} body", "request body removed"))
    elif old_body:
        changes += _schema(
            before,
            after,
            old_body.get("schema", {}),
            new_body.get("schema", {}),
            f"{where} body",
            "input",
            0,
        )
    old_responses: dict[str, Any] = old.get("responses", {})
    new_responses: dict[str, Any] = new.get("responses", {})
    for status in sorted(old_responses.keys() - new_responses.keys()):
        changes.append(Change(status.startswith("2"), f"{where} {status}", "response removed"))
    for status in sorted(new_responses.keys() - old_responses.keys()):
        changes.append(Change(False, f"{where} {status}", "response added"))
    for status in sorted(old_responses.keys() & new_responses.keys()):
        old_json = old_responses[status].get("content", {}).get("application/json", {})
        new_json = new_responses[status].get("content", {}).get("application/json", {})
        if old_json.get("schema") and new_json.get("schema"):
            changes += _schema(
                before,
                after,
                old_json["schema"],
                new_json["schema"],
                f"{where} {status}",
                "output",
                0,
            )
        elif old_json.get("schema"):
            changes.append(Change(True, f"{where} {status}", "response body removed"))
    return changes


def _parameters(
    before: _Side, after: _Side, old: dict[str, Any], new: dict[str, Any], where: str
) -> list[Change]:
    def keyed(operation: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
        return {(p["in"], p["name"]): p for p in operation.get("parameters", [])}

    old_params, new_params = keyed(old), keyed(new)
    changes = []
    for key in sorted(old_params.keys() - new_params.keys()):
        changes.append(Change(True, f"{where} {key[0]} {key[1]}", "parameter removed"))
    for key in sorted(new_params.keys() - old_params.keys()):
        required = bool(new_params[key].get("required"))
        what = "required parameter added" if required else "optional parameter added"
        changes.append(Change(required, f"{where} {key[0]} {key[1]}", what))
    for key in sorted(old_params.keys() & new_params.keys()):
        here = f"{where} {key[0]} {key[1]}"
        if new_params[key].get("required") and not old_params[key].get("required"):
            changes.append(Change(True, here, "parameter now required"))
        changes += _schema(
            before,
            after,
            old_params[key].get("schema", {}),
            new_params[key].get("schema", {}),
            here,
            "input",
            0,
        )
    return changes


def _schema(
    before: _Side,
    after: _Side,
    old: Schema,
    new: Schema,
    where: str,
    direction: Direction,
    depth: int,
) -> list[Change]:
    if depth > _MAX_DEPTH:
        return []
    changes: list[Change] = []
    old_kind, new_kind = before.kind(old), after.kind(new)
    if old_kind != new_kind:
        return [Change(True, where, f"type changed from {old_kind} to {new_kind}")]
    old, new = before.resolve(old), after.resolve(new)
    old_enum, new_enum = set(map(str, old.get("enum", []))), set(map(str, new.get("enum", [])))
    if old_enum or new_enum:
        for value in sorted(old_enum - new_enum):
            changes.append(Change(True, where, f"enum value {value!r} removed"))
        for value in sorted(new_enum - old_enum):
            changes.append(Change(False, where, f"enum value {value!r} added"))
    for members in ("anyOf", "oneOf"):
        old_members, new_members = old.get(members, []), new.get(members, [])
        if old_members and len(old_members) == len(new_members):
            for old_member, new_member in zip(old_members, new_members, strict=True):
                changes += _schema(
                    before, after, old_member, new_member, where, direction, depth + 1
                )
    if "items" in old and "items" in new:
        changes += _schema(
            before, after, old["items"], new["items"], f"{where}[]", direction, depth + 1
        )
    changes += _properties(before, after, old, new, where, direction, depth)
    return changes


def _properties(
    before: _Side,
    after: _Side,
    old: Schema,
    new: Schema,
    where: str,
    direction: Direction,
    depth: int,
) -> list[Change]:
    old_props: dict[str, Schema] = old.get("properties", {})
    new_props: dict[str, Schema] = new.get("properties", {})
    old_required, new_required = set(old.get("required", [])), set(new.get("required", []))
    changes = []
    for name in sorted(old_props.keys() - new_props.keys()):
        # Removing a response field breaks readers; removing an input breaks clients that
        # still send it, since bodies refuse unknown fields.
        changes.append(Change(True, f"{where}.{name}", "field removed"))
    for name in sorted(new_props.keys() - old_props.keys()):
        breaking = direction == "input" and name in new_required
        changes.append(
            Change(breaking, f"{where}.{name}", f"{'required ' if breaking else ''}field added")
        )
    for name in sorted(old_props.keys() & new_props.keys()):
        here = f"{where}.{name}"
        if direction == "input" and name in new_required - old_required:
            changes.append(Change(True, here, "input now required"))
        if direction == "output" and name in old_required - new_required:
            changes.append(Change(True, here, "no longer always in the response"))
        changes += _schema(
            before, after, old_props[name], new_props[name], here, direction, depth + 1
        )
    return changes
