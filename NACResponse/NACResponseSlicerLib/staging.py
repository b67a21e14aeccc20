"""Put a list of files (e.g. from Slicer's DICOM database) into one folder for ``import --dicom``
(Slicer-free).  Hard links when possible (no copy of large series), else copies; names are made
unique so files with the same base name from different series do not collide."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from pathlib import Path


def stage_files(files: Iterable[str], destination: str) -> str:
    dest = Path(destination)
    dest.mkdir(parents=True, exist_ok=True)
    count = 0
    for index, source in enumerate(files):
        src = Path(source)
        if not src.is_file():
            raise FileNotFoundError(f"{src}: listed in the DICOM database but missing on disk")
        target = dest / f"{index:06d}_{src.name}"
        try:
            os.link(src, target)
        except OSError:
            shutil.copy2(src, target)
        count += 1
    if count == 0:
        raise ValueError("no files to stage")
    return str(dest)
