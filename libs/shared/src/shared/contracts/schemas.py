"""JSON Schema snapshots of every contract, and the compatibility rule checked against them.

A committed snapshot per ``(type, version)`` is the published contract. A change that keeps
old messages valid for new readers *and* new messages valid for old readers (adding an
optional field; readers ignore unknown fields) may update the snapshot in place; anything
else needs a new version.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from shared.contracts.base import all_contracts

SNAPSHOT_DIR = Path(__file__).with_name("snapshots")

JsonSchema = dict[str, Any]


def snapshot_name(event_type: str, version: int) -> str:
    return f"{event_type}.v{version}.json"


def current_schemas() -> dict[str, JsonSchema]:
    """Schema of every registered contract, by snapshot file name."""
    return {
        snapshot_name(event_type, version): model.model_json_schema(mode="validation")
        for event_type, version, model in all_contracts()
    }


def committed_schemas(directory: Path = SNAPSHOT_DIR) -> dict[str, JsonSchema]:
    return {path.name: orjson.loads(path.read_bytes()) for path in sorted(directory.glob("*.json"))}


def _resolve(schema: JsonSchema, root: JsonSchema) -> JsonSchema:
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        resolved: JsonSchema = root["$defs"][ref.removeprefix("#/$defs/")]
        return resolved
    return schema


def incompatibilities(
    old: JsonSchema,
    new: JsonSchema,
    *,
    path: str = "data",
    old_root: JsonSchema | None = None,
    new_root: JsonSchema | None = None,
) -> list[str]:
    """Why ``new`` breaks readers or writers of ``old``; empty when the change is compatible."""
    old_root = old_root if old_root is not None else old
    new_root = new_root if new_root is not None else new
    old, new = _resolve(old, old_root), _resolve(new, new_root)
    if "properties" not in old:
        # A leaf (or a combinator): compatible only if unchanged, refs resolved.
        if _expand(old, old_root) != _expand(new, new_root):
            return [f"{path}: schema changed"]
        return []
    problems: list[str] = []
    old_props: dict[str, JsonSchema] = old["properties"]
    new_props: dict[str, JsonSchema] = new.get("properties", {})
    old_required, new_required = set(old.get("required", [])), set(new.get("required", []))
    for name, old_prop in old_props.items():
        if name not in new_props:
            problems.append(f"{path}.{name}: removed")
            continue
        problems += incompatibilities(
            old_prop, new_props[name], path=f"{path}.{name}", old_root=old_root, new_root=new_root
        )
    for name in sorted(new_required - old_required):
        problems.append(f"{path}.{name}: now required")
    for name in sorted(old_required - new_required):
        problems.append(f"{path}.{name}: no longer required")
    return problems


def _expand(schema: Any, root: JsonSchema) -> Any:
    if isinstance(schema, dict):
        schema = _resolve(schema, root)
        return {key: _expand(value, root) for key, value in schema.items() if key != "title"}
    if isinstance(schema, list):
        return [_expand(item, root) for item in schema]
    return schema


def export(directory: Path = SNAPSHOT_DIR, *, force: bool = False) -> list[str]:
    """Write the snapshot of every contract; refuse an incompatible rewrite unless forced.

    Returns the names of the files written or changed.
    """
    directory.mkdir(parents=True, exist_ok=True)
    committed = committed_schemas(directory)
    changed: list[str] = []
    for name, schema in current_schemas().items():
        if name in committed and committed[name] == schema:
            continue
        if name in committed and not force:
            problems = incompatibilities(committed[name], schema)
            if problems:
                raise ValueError(f"{name} changed incompatibly: {'; '.join(problems)}")
        (directory / name).write_bytes(
            orjson.dumps(schema, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"
        )
        changed.append(name)
    return changed
