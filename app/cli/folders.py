"""Send a folder of images as a zip archive, made on the fly."""

from __future__ import annotations

import atexit
import logging
import shutil
import tempfile
from pathlib import Path

from app.evaluation.archives import zip_folder

logger = logging.getLogger(__name__)

FOLDER_ROLES = ("original", "subset")


def zip_folders(files: dict[str, Path]) -> dict[str, Path]:
    """Replace each folder given as ``original`` or ``subset`` by a zip of it.

    The archives are written to a temporary directory that is removed when the
    process exits. A local run and a server receive the same upload either way.
    """
    folders = {role: path for role, path in files.items() if path.is_dir()}
    folders = {role: path for role, path in folders.items() if role in FOLDER_ROLES}
    if not folders:
        return files
    scratch = Path(tempfile.mkdtemp(prefix="distilgate-"))
    atexit.register(shutil.rmtree, scratch, ignore_errors=True)
    zipped = dict(files)
    for role, folder in folders.items():
        archive = zip_folder(folder, scratch / f"{folder.resolve().name or role}.zip")
        logger.info("folder_zipped role=%s folder=%s archive=%s", role, folder, archive)
        zipped[role] = archive
    return zipped
