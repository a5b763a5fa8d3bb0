"""Product code repeats no run of more than ten lines: what two places share belongs in one
(across services, in ``libs/shared``).

The scan is pylint's similarity checker (``duplicate-code``, nothing else of pylint), over
``libs/shared``, every service and the gateway, without tests and migrations, with comments,
docstrings, imports and signatures left out of the comparison. It finds lines repeated to
the letter; lines of the same shape under other names are the ``duplicates`` tool's to find
(docs/development.md, "Duplicate code").
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.services import ROOT, product_modules

LONGEST_RUN_ALLOWED = 10


def _repeated_runs(paths: list[Path]) -> str:
    """pylint's report of every run longer than ``LONGEST_RUN_ALLOWED`` found twice."""
    scan = subprocess.run(
        [
            sys.executable,
            "-m",
            "pylint",
            "--disable=all",
            "--enable=duplicate-code",
            f"--min-similarity-lines={LONGEST_RUN_ALLOWED + 1}",
            "--ignore-comments=y",
            "--ignore-docstrings=y",
            "--ignore-imports=y",
            "--ignore-signatures=y",
            "--score=n",
            *map(str, paths),
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert not scan.stderr.strip(), scan.stderr
    return scan.stdout


def test_the_product_code_repeats_no_run_of_more_than_ten_lines() -> None:
    modules = product_modules(migrations=False)
    assert len(modules) > 100  # the glob still finds the code
    report = _repeated_runs(modules)
    assert "R0801" not in report, report


def test_the_scan_finds_a_run_of_eleven_lines_copied_into_another_service(
    tmp_path: Path,
) -> None:
    body = "\n".join(f"    total = total * {n} + len(name)" for n in range(11))
    function = f"def checksum(name: str) -> int:\n    total = 0\n{body}\n    return total\n"
    first, second = tmp_path / "orders_copy.py", tmp_path / "payments_copy.py"
    first.write_text(function)
    second.write_text("VALUE = 1\n\n\n" + function.replace("checksum", "digest"))
    assert "R0801" in _repeated_runs([first, second])
