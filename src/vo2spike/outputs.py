"""Safe outputs: nothing half-written, nothing overwritten without ``force``, and ``force``
never deletes what vo2spike did not write.

Every output folder gets a marker file (:data:`MARKER`) naming the kind of output. With
``force`` an existing folder is replaced only if it is of the same kind (its marker, or for
folders written before markers existed, its contents), and never when it is an input, holds
an input, or is (or holds) the working folder.
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import json
import os
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path

from vo2spike import __version__, interrupts

MARKER = ".vo2spike-output"

#: Output kinds -> (file that identifies an unmarked older output, names it may contain).
#: Used only for folders written before the marker existed.
KNOWN_CONTENTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "run": ("config.json", ("config.json", "metrics.json", "*.safetensors", "*.tmp",
                            ".*-fit.json", "evaluation", "real_cv")),
    "predictions": ("windows.csv", ("windows.csv", "tests.csv")),
    "evaluation": ("report.md", ("report.md", "metrics.json", "*.png")),
    "crossval": ("report.md", ("report.md", "metrics.json", "predictions.csv", "*.png")),
    "cohort": ("SIMULATED.json", ("SIMULATED.json", "subject-info.csv", "test_measure.csv",
                                  "truth.csv")),
    "converted": ("SOURCE.json", ("SOURCE.json", "subject-info.csv", "test_measure.csv")),
    "release": ("SHA256SUMS.txt", ("LICENSE.txt", "SHA256SUMS.txt", "subject-info.csv",
                                   "test_measure.csv")),
}


class OutputExistsError(RuntimeError):
    """The output path exists (and ``--force`` was not given, or may not replace it), or it
    cannot be written."""


def _marker_kind(path: Path) -> str | None:
    try:
        return json.loads((path / MARKER).read_text()).get("kind")
    except (OSError, ValueError, AttributeError):
        return None


def _written_by(path: Path, kind: str) -> bool:
    """True if the folder ``path`` is a ``kind`` output of vo2spike."""
    found = _marker_kind(path)
    if found is not None:
        return found == kind
    if kind not in KNOWN_CONTENTS or (path / MARKER).exists():
        return False
    signature, patterns = KNOWN_CONTENTS[kind]
    names = [p.name for p in path.iterdir()]
    return signature in names and all(
        any(fnmatch.fnmatch(n, pat) for pat in patterns) for n in names)


def _is_empty_dir(path: Path) -> bool:
    """A real folder holding nothing but (perhaps) vo2spike's marker."""
    return path.is_dir() and not path.is_symlink() and all(
        p.name == MARKER for p in path.iterdir())


def _nearest_existing(path: Path) -> Path:
    p = path
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def check_writable(path: Path, force: bool, *, kind: str | None = None,
                   inputs: Sequence[Path] = ()) -> None:
    """Raise OutputExistsError unless ``path`` may be written now.

    Allowed: a path that does not exist (in a folder that can be written), an empty folder,
    or, with ``force``, an output of the same ``kind`` (a folder with vo2spike's marker; for
    ``kind=None`` a file). Never: an input, a folder holding an input, the working folder or
    one holding it.
    """
    path = Path(path)
    resolved = path.resolve()
    cwd = Path.cwd().resolve()
    if resolved == cwd or resolved in cwd.parents:
        raise OutputExistsError(f"{path}: is the working folder or holds it; choose a new "
                                "folder to write into")
    for inp in inputs:
        r = Path(inp).resolve()
        if r == resolved or resolved in r.parents:
            what = "is" if r == resolved else "holds"
            raise OutputExistsError(f"{path}: {what} the input {inp}; choose another output")
    anchor = _nearest_existing(path.parent)
    if not anchor.is_dir():
        raise OutputExistsError(f"cannot write {path}: {anchor} is not a folder")
    if not os.access(anchor, os.W_OK | os.X_OK):
        raise OutputExistsError(f"cannot write {path}: no permission to write in {anchor}")
    if not path.exists() and not path.is_symlink():
        return
    if _is_empty_dir(path):
        return
    if not force:
        raise OutputExistsError(f"{path} already exists; pass --force to replace it")
    if path.is_symlink():
        raise OutputExistsError(f"{path}: is a symbolic link; refusing to replace it")
    if kind is None:
        if not path.is_file():
            raise OutputExistsError(f"{path}: is a folder, not a file; refusing to replace it")
        return
    if not path.is_dir():
        raise OutputExistsError(f"{path}: is a file, not a {kind} folder written by vo2spike; "
                                "refusing to replace it")
    if not _written_by(path, kind):
        raise OutputExistsError(
            f"{path}: was not written by vo2spike as a {kind} folder (no {MARKER} of that "
            "kind); refusing to replace it even with --force. Remove it yourself or choose "
            "another output")


def _mark(path: Path, kind: str) -> None:
    (path / MARKER).write_text(json.dumps({"kind": kind, "vo2spike_version": __version__})
                               + "\n")


def _remove_own(path: Path, kind: str) -> None:
    """Delete a folder only if it is vo2spike's output of ``kind``."""
    if path.is_dir() and not path.is_symlink() and _written_by(path, kind):
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        raise OutputExistsError(f"{path}: is in the way and was not written by vo2spike; "
                                "remove it yourself")


def partial_path(path: Path) -> Path:
    """Where :func:`atomic_dir` builds ``path`` before moving it into place: PATH.partial."""
    path = Path(path)
    return path.with_name(path.name + ".partial")


@contextlib.contextmanager
def atomic_dir(path: Path, force: bool = False, *, kind: str,
               inputs: Sequence[Path] = ()) -> Iterator[Path]:
    """Yield a temporary folder, ``path``.partial, that replaces ``path`` only if the block
    succeeds.

    The old output (if ``force`` allows replacing it) stays untouched until the new one is
    complete; a failure removes the temporary folder and nothing else. Creating, removing and
    committing are :class:`~vo2spike.interrupts.deferred` sections, so a signal can never cut
    them in two. A caller whose folder holds something worth resuming (``train``) unregisters
    it with ``interrupts.keep``: a failure then leaves it in place.
    """
    path = Path(path)
    check_writable(path, force, kind=kind, inputs=inputs)
    tmp = partial_path(path)
    try:
        with interrupts.deferred():
            _remove_own(tmp, kind)  # left over from a killed run
            tmp.mkdir(parents=True)
            interrupts.remove_on_interrupt(tmp)  # only once it is ours
            _mark(tmp, kind)
    except BaseException:  # an interruption at the end of the section, or a failure
        interrupts.discard(tmp)
        raise
    yield from _commit_when_done(path, tmp, kind)


@contextlib.contextmanager
def resume_dir(path: Path, partial: Path, *, kind: str) -> Iterator[Path]:
    """Like :func:`atomic_dir` for an existing ``partial`` folder (an interrupted run being
    resumed, kept on failure): yield it, and move it to ``path`` when the block succeeds."""
    check_writable(path, True, kind=kind)
    yield from _commit_when_done(Path(path), Path(partial), kind)


def _commit_when_done(path: Path, tmp: Path, kind: str) -> Iterator[Path]:
    try:
        yield tmp
    except BaseException:
        interrupts.discard(tmp)
        raise
    old = path.with_name(path.name + ".old.partial")
    with interrupts.deferred():
        if path.exists():
            _remove_own(old, kind)
            os.replace(path, old)
        os.replace(tmp, path)
        interrupts.keep(tmp)
        if old.exists():
            shutil.rmtree(old)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write bytes to ``path`` via a temporary file and an atomic rename (one deferred
    section: an interruption waits until the file is whole or gone)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with interrupts.deferred():
        interrupts.remove_on_interrupt(tmp)
        try:
            tmp.write_bytes(data)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        finally:
            interrupts.keep(tmp)


def atomic_write_text(path: Path, text: str) -> None:
    """Write text (UTF-8) to ``path`` via a temporary file and an atomic rename."""
    atomic_write_bytes(path, text.encode("utf-8"))


def sha256_file(path: Path) -> str:
    """Hex SHA256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_json(path: Path, obj: object) -> None:
    """Write ``obj`` as pretty JSON, atomically."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")
