"""Docs: every relative link and image in README.md, docs/*.md and deploy/**/*.md points
to a file of the repository, every page of mkdocs.yml exists, and the site builds."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

from tests.helpers import ROOT

LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")),
         *sorted((ROOT / "deploy").rglob("*.md"))]


def test_relative_links_resolve() -> None:
    broken = []
    for page in PAGES:
        text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
        for target in LINK.findall(text):
            if re.match(r"^[a-z]+:", target) or target.startswith("#"):
                continue
            path = (page.parent / target.split("#", 1)[0]).resolve()
            if not path.exists():
                broken.append(f"{page.relative_to(ROOT)}: {target}")
    assert broken == []


def test_docs_show_the_dashboard_screenshots() -> None:
    shown = {Path(t).name for p in PAGES for t in LINK.findall(p.read_text()) if "img/" in t}
    assert {"jobs.png", "job-page.png", "submit-errors.png", "workers.png"} <= shown
    assert all((ROOT / "docs" / "img" / name).stat().st_size > 1000 for name in shown)


def test_mkdocs_navigation_pages_exist() -> None:
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    pages = [next(iter(item.values())) for item in config["nav"]]
    missing = [p for p in pages if not (ROOT / "docs" / p).exists()]
    assert missing == []


def test_mkdocs_site_builds_without_warnings(tmp_path: Path) -> None:
    """The documentation site (mkdocs-material) builds in strict mode: every page in the
    navigation, every anchor and link inside docs/ resolves, the theme renders."""
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet",
         "--config-file", str(ROOT / "mkdocs.yml"), "--site-dir", str(tmp_path / "site")],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "site" / "scheduling" / "index.html").is_file()
