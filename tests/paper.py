"""Paper as it prints (TESTING.md): spreadsheets rendered by LibreOffice to PDF, read back with
poppler (page sizes, text per page), the first page of each kept as a PNG for a person to look at.

Every export people print (附件1, 附件2, the 抽查名单) is checked through here. LibreOffice runs
with a profile of its own per call, so parallel test runs on one machine do not share its lock.
The PNGs go to `LOOKBACK_PRINTS_DIR`, else `var/prints` in the checkout (ignored by git).
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

A4_LONG, A4_SHORT = 841.89, 595.28  # points
PRINTS_DIR = Path(os.environ.get("LOOKBACK_PRINTS_DIR")
                  or Path(__file__).resolve().parents[1] / "var" / "prints")


def soffice() -> str:
    found = shutil.which("soffice") or shutil.which("libreoffice")
    if found is None:
        # Never a skip: paper that was not printed was not tested (CI installs LibreOffice).
        pytest.fail("LibreOffice (libreoffice-calc) is not installed; .ci/run installs it")
    return found


@dataclass(frozen=True)
class Printed:
    """A PDF as LibreOffice printed it: its pages' sizes and texts."""

    pdf: Path
    sizes: list[tuple[float, float]]
    texts: list[str]

    @property
    def pages(self) -> int:
        return len(self.sizes)

    def all_a4(self, *, landscape: bool) -> bool:
        def a4(w: float, h: float) -> bool:
            long, short = (w, h) if landscape else (h, w)
            return abs(long - A4_LONG) < 2 and abs(short - A4_SHORT) < 2
        return all(a4(w, h) for w, h in self.sizes)


def render(workbooks: dict[str, bytes], workdir: Path) -> dict[str, Printed]:
    """Print each workbook (name → .xlsx bytes) to PDF in one LibreOffice run; keep page 1 of
    each as `<PRINTS_DIR>/<name>.png`."""
    binary = soffice()
    workdir.mkdir(parents=True, exist_ok=True)
    sources = []
    for name, content in workbooks.items():
        source = workdir / f"{name}.xlsx"
        source.write_bytes(content)
        sources.append(str(source))
    with tempfile.TemporaryDirectory(prefix="lookback-lo-") as profile:
        result = subprocess.run(
            [binary, f"-env:UserInstallation=file://{profile}", "--headless", "--norestore",
             "--convert-to", "pdf", "--outdir", str(workdir), *sources],
            capture_output=True, text=True, timeout=300)
    printed = {}
    PRINTS_DIR.mkdir(parents=True, exist_ok=True)
    for name in workbooks:
        pdf = workdir / f"{name}.pdf"
        assert pdf.exists(), f"LibreOffice printed no {pdf.name}: {result.stdout}{result.stderr}"
        printed[name] = Printed(pdf, _sizes(pdf), _texts(pdf))
        subprocess.run(["pdftoppm", "-png", "-r", "80", "-f", "1", "-l", "1", "-singlefile",
                        str(pdf), str(PRINTS_DIR / name)], check=True, timeout=120)
    return printed


def _sizes(pdf: Path) -> list[tuple[float, float]]:
    info = subprocess.run(["pdfinfo", "-f", "1", "-l", "9999", str(pdf)], capture_output=True,
                          text=True, check=True, timeout=60).stdout
    return [(float(w), float(h)) for w, h in
            re.findall(r"Page\s+\d+ size:\s+([\d.]+) x ([\d.]+)", info)]


def _texts(pdf: Path) -> list[str]:
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True,
                          check=True, timeout=60).stdout
    return text.split("\f")[:-1] if text.endswith("\f") else text.split("\f")
