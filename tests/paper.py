"""Paper as it prints (TESTING.md): an export rendered by LibreOffice (Debian's `libreoffice-calc`,
headless `--convert-to pdf`), read back with poppler (`pdfinfo`, `pdftotext`, `pdftoppm`), and the
first page of each written as a PNG for a person to look at.

`.ci/run` installs LibreOffice, poppler-utils and a CJK font where they are missing. Any service's
test may use this: render its exports in one LibreOffice run (it starts in seconds, not per file),
then assert page count and orientation.

The PNGs go to `LOOKBACK_SCREENS_DIR`, default `var/screens/` at the repository root (ignored by
git): look at them before calling an export done.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[1]
A4_POINTS = (841.89, 595.28)     # landscape; portrait is the other way round
_TOLERANCE = 2.0
_TOOLS = ("libreoffice", "pdfinfo", "pdftotext", "pdftoppm")


def screens_dir() -> Path:
    folder = Path(os.environ.get("LOOKBACK_SCREENS_DIR") or REPOSITORY / "var" / "screens")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def require_tools() -> None:
    """Skip, saying what to install, where LibreOffice or poppler is absent (CI installs them)."""
    missing = [tool for tool in _TOOLS if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed: apt-get install -y --no-install-recommends "
                    "libreoffice-calc poppler-utils fonts-wqy-microhei")


@dataclass(frozen=True)
class Printed:
    """A rendered PDF: each page's size in points and its text (in reading order: a cell's
    wrapped text comes out on consecutive lines)."""

    pdf: Path
    sizes: tuple[tuple[float, float], ...]
    texts: tuple[str, ...]

    @property
    def pages(self) -> int:
        return len(self.sizes)

    def all_a4_landscape(self) -> bool:
        width, height = A4_POINTS
        return all(abs(w - width) < _TOLERANCE and abs(h - height) < _TOLERANCE
                   for w, h in self.sizes)

    def pages_with(self, text: str) -> list[int]:
        """1-based numbers of the pages whose text contains `text` (spaces ignored)."""
        wanted = "".join(text.split())
        return [n for n, page in enumerate(self.texts, start=1) if wanted in "".join(page.split())]

    def first_page_png(self, name: str, *, resolution: int = 80) -> Path:
        """The first page as `<screens>/<name>.png`."""
        target = screens_dir() / name
        subprocess.run(["pdftoppm", "-png", "-r", str(resolution), "-f", "1", "-l", "1",
                        "-singlefile", str(self.pdf), str(target)], check=True, timeout=120)
        return target.with_suffix(".png")


def render(files: list[Path], workdir: Path) -> dict[Path, Printed]:
    """Render spreadsheets to PDF in one LibreOffice run, with a private profile (so runs in
    parallel never share a lock), and read each PDF back."""
    require_tools()
    outdir = workdir / "pdf"
    outdir.mkdir(parents=True, exist_ok=True)
    profile = (workdir / "lo-profile").resolve().as_uri()
    subprocess.run(["libreoffice", f"-env:UserInstallation={profile}", "--headless",
                    "--convert-to", "pdf", "--outdir", str(outdir), *map(str, files)],
                   check=True, timeout=300, capture_output=True)
    printed = {}
    for source in files:
        pdf = outdir / f"{source.stem}.pdf"
        assert pdf.exists(), f"LibreOffice wrote no PDF for {source.name}"
        printed[source] = read_pdf(pdf)
    return printed


def read_pdf(pdf: Path) -> Printed:
    info = subprocess.run(["pdfinfo", str(pdf)], check=True, capture_output=True, text=True,
                          timeout=60).stdout
    pages = int(re.search(r"^Pages:\s+(\d+)", info, re.M).group(1))  # type: ignore[union-attr]
    sized = subprocess.run(["pdfinfo", "-f", "1", "-l", str(pages), str(pdf)], check=True,
                           capture_output=True, text=True, timeout=60).stdout
    sizes = tuple((float(w), float(h)) for w, h in
                  re.findall(r"^Page\s+\d+ size:\s+([\d.]+) x ([\d.]+)", sized, re.M))
    assert len(sizes) == pages, sized
    texts = tuple(subprocess.run(["pdftotext", "-f", str(n), "-l", str(n), str(pdf), "-"],
                                 check=True, capture_output=True, text=True, timeout=60).stdout
                  for n in range(1, pages + 1))
    return Printed(pdf, sizes, texts)
