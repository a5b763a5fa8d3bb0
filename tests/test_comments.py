"""Product code's comments say why, not what a benchmark read: figures live in bench/CHANGES.md.

A setting's arithmetic ("a provider taking 200 ms with 32 in flight") and facts about other
programs' settings ("uvicorn: 5 s") are welcome; CPU timings, profile shares, before → after
pairs and pointers to the README's benchmark diaries are not.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

import pytest

from tests.services import ROOT, product_modules

FIGURES = re.compile(
    r"\d\s*(µs|us)\b"  # microsecond timings
    r"|\d\s*%"  # shares of a profile or of the CPU
    r"|\d\s*→\s*~?\d"  # before → after
    r"|\bms of CPU\b"
    r"|\d\s*ms\b.*\bCPU\b"
    r"|README, Benchmarks"
)


def _comments_and_docstrings(path: Path) -> list[tuple[int, str]]:
    source = path.read_text()
    texts = [
        (token.start[0], token.string)
        for token in tokenize.generate_tokens(io.StringIO(source).readline)
        if token.type == tokenize.COMMENT
    ]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                value = body[0].value.value
                if isinstance(value, str):
                    texts.append((body[0].lineno, value))
    return texts


def test_the_product_code_is_found() -> None:
    assert len(product_modules(migrations=False)) > 50


@pytest.mark.parametrize(
    "path", product_modules(migrations=False), ids=lambda path: str(path.relative_to(ROOT))
)
def test_no_comment_or_docstring_quotes_a_benchmark_figure(path: Path) -> None:
    quoted = [
        f"line {line}: {match.group(0)!r}"
        for line, text in _comments_and_docstrings(path)
        for match in [FIGURES.search(text)]
        if match is not None
    ]
    assert not quoted, f"move these figures to bench/CHANGES.md: {quoted}"


MAX_MODULE_DOCSTRING_LINES = 15


def _module_docstring_lines(path: Path) -> int:
    """The source lines a module's docstring spans, its quotes included; 0 without one."""
    body = ast.parse(path.read_text()).body
    if not body or not isinstance(body[0], ast.Expr):
        return 0
    node = body[0]
    if not (isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)):
        return 0
    return (node.end_lineno or node.lineno) - node.lineno + 1


@pytest.mark.parametrize(
    "path", product_modules(migrations=False), ids=lambda path: str(path.relative_to(ROOT))
)
def test_a_module_docstring_is_short(path: Path) -> None:
    # A module's docstring says what it is and why in a glance; the design goes to docs/.
    lines = _module_docstring_lines(path)
    assert lines <= MAX_MODULE_DOCSTRING_LINES, (
        f"the module docstring spans {lines} lines (at most {MAX_MODULE_DOCSTRING_LINES}): "
        "keep the idea, move the detail to docs/"
    )
