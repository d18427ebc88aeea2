"""Shared test fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

_REPO = Path(__file__).resolve().parents[1]


def _find_shared_data() -> Path | None:
    for base in (_REPO.parent / "shared" / "data", _REPO.parent.parent / "shared" / "data"):
        if base.is_dir():
            return base
    return None


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Folder with the real STEM test images (read in place, never copied: some are GPL)."""
    path = _find_shared_data()
    if path is None:
        pytest.skip(_ABSENT)
    return path


_ABSENT = ("real-data test: the shared STEM images are absent (looked for "
           + " and ".join(str(p) for p in (_REPO.parent / "shared" / "data", _REPO.parent.parent / "shared" / "data"))
           + ")")


def pytest_terminal_summary(terminalreporter):
    """One line at the end of the run saying how many real-data tests did not run, and why."""
    if _find_shared_data() is not None:
        return
    skipped = [r for r in terminalreporter.stats.get("skipped", []) if _ABSENT in str(r.longrepr)]
    if skipped:
        terminalreporter.write_line(f"{len(skipped)} real-data tests skipped: {_ABSENT.split(': ', 1)[1]}",
                                    yellow=True)
