"""Shared pytest fixtures: paths to ../shared/data and small synthetic cohorts."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("NACRESPONSE_SHARED_DATA", ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data, or skip: a user's fresh clone has no ../shared."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real test data not available ({SHARED_DATA} is absent)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def synthetic_source(tmp_path_factory) -> Path:
    """A small synthetic cohort in the folder convention (6 patients, 3 timepoints, 2 readers)."""
    from NACResponseLib.demo.synthetic import generate_cohort

    out = tmp_path_factory.mktemp("synthetic_source")
    generate_cohort(out, n_patients=6, seed=7)
    return out


@pytest.fixture(scope="session")
def synthetic_study(synthetic_source, tmp_path_factory):
    """The small synthetic cohort imported as a study folder (StudyStore).

    Session-scoped and shared: tests that write into a study must copy it first
    (``copy_study`` fixture)."""
    from NACResponseLib.study.importers import import_folder

    return import_folder(synthetic_source, tmp_path_factory.mktemp("study") / "study")


@pytest.fixture
def copy_study(synthetic_study, tmp_path):
    """A private, writable copy of the small synthetic study."""
    import shutil

    from NACResponseLib.study.store import StudyStore

    dest = tmp_path / "study"
    shutil.copytree(synthetic_study.root, dest)
    return StudyStore(dest)
