"""Writing files safely: the one place the package decides how outputs reach the disk.

Every command promises that a crash or Ctrl-C never leaves half a file, that an output never
replaces one of its inputs however the path is spelled, and that `--overwrite` removes only what
the same command wrote before. The helpers here are those three decisions:

- `write_atomic(path, data)` / `write_with(path, write)` / `write_json(path, value)`: the new
  content goes to a hidden temporary file in the same folder and is renamed onto `path`
  (os.replace, atomic on POSIX and Windows). The file gets the permissions a plain `open(path,
  "w")` would give (0666 less the umask), not tempfile's private 0600, so a shared model folder
  stays readable by the group. On any failure, KeyboardInterrupt included, the temporary file
  is removed and `path` is left as it was.
- `same_file(a, b)` / `is_within(path, folder)` / `input_at(path, inputs)`: whether an output
  is one of the inputs (or a folder holding them), comparing the files themselves
  (os.path.samefile: links, `..`, case-insensitive file systems) where they exist and the
  resolved paths (os.path.realpath) where they do not yet.
- `remove_empty_folders(folder)`: what a failed run created and left empty goes again.
- `listed_outputs(folder, names)`: of the relative paths a command's own manifest lists as
  written by its earlier run, those that are plain files inside `folder` -- the only files an
  `--overwrite` may remove. Anything the manifest does not list is never touched.

This module is the lowest layer of the package: it imports no other `deblurgan_jax` module and
nothing beyond the standard library.
"""

from __future__ import annotations

import csv
import io
import json
import os
import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

__all__ = [
    "write_atomic",
    "write_with",
    "write_json",
    "write_csv",
    "temporary_name",
    "same_file",
    "is_within",
    "input_at",
    "listed_outputs",
    "remove_empty_folders",
]


def _umask() -> int:
    # os.umask can only be read by setting it; set it straight back.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def temporary_name(path: str | os.PathLike[str], tag: str = "partial") -> str:
    """A hidden, unused name beside `path` that keeps its extension
    (DIR/.NAME.<random>.<tag>.EXT): writers that choose the format by the extension (PIL,
    OpenCV) still see the right one, and dataset readers skip hidden files."""
    path = os.fspath(path)
    folder, base = os.path.split(os.path.abspath(path))
    stem, ext = os.path.splitext(base)
    return os.path.join(folder, f".{stem}.{secrets.token_hex(4)}.{tag}{ext}")


def _remove_quietly(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def write_with(path: str | os.PathLike[str], write: Callable[[str], Any]) -> None:
    """Calls `write(tmp)` to create a temporary file beside `path`, then renames it onto
    `path`. `write` may create the file any way it likes (PIL's save, np.save, open()); the
    result gets the umask's permissions. On failure the temporary file is removed."""
    path = os.fspath(path)
    tmp = temporary_name(path)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        _remove_quietly(tmp)
        raise


def write_atomic(path: str | os.PathLike[str], data: bytes | str) -> None:
    """Writes `data` (str as UTF-8) to `path` atomically; see the module docstring."""
    payload = data.encode("utf-8") if isinstance(data, str) else bytes(data)

    def write(tmp: str) -> None:
        # O_EXCL: the random name is never someone else's file; 0o666 & ~umask as open() does.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
        with os.fdopen(fd, "wb") as f:
            f.write(payload)

    write_with(path, write)


def write_json(path: str | os.PathLike[str], value: Any) -> None:
    """Writes `value` as indented, strict JSON (NaN and infinities refused: ValueError, nothing
    written) with a final newline, atomically."""
    write_atomic(path, json.dumps(value, indent=2, allow_nan=False) + "\n")


def write_csv(rows: Sequence[Mapping[str, Any]], path: str | os.PathLike[str]) -> None:
    """Writes `rows` (dicts with the same keys, the first row's order) as a CSV file with a
    header, atomically; nothing is written for no rows."""
    if not rows:
        return
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    write_atomic(path, text.getvalue())


def same_file(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """Whether `a` and `b` name the same file or folder, however spelled: the same inode where
    both exist, the same resolved path otherwise."""
    a, b = os.fspath(a), os.fspath(b)
    if os.path.exists(a) and os.path.exists(b):
        return os.path.samefile(a, b)
    return os.path.normcase(os.path.realpath(a)) == os.path.normcase(os.path.realpath(b))


def is_within(path: str | os.PathLike[str], folder: str | os.PathLike[str]) -> bool:
    """Whether `path` is `folder` or lies anywhere below it (links resolved; `path` need not
    exist yet)."""
    path, folder = os.fspath(path), os.fspath(folder)
    if same_file(path, folder):
        return True
    real_path = os.path.normcase(os.path.realpath(path))
    real_folder = os.path.normcase(os.path.realpath(folder)).rstrip(os.sep)
    if real_path.startswith(real_folder + os.sep):
        return True
    # A parent that exists may be the folder under another spelling (case, hard-linked mount).
    parent = os.path.dirname(os.path.abspath(path))
    while parent and os.path.dirname(parent) != parent:
        if os.path.exists(parent) and os.path.exists(folder) and os.path.samefile(parent, folder):
            return True
        parent = os.path.dirname(parent)
    return False


def input_at(
    output: str | os.PathLike[str], inputs: Iterable[str | os.PathLike[str]]
) -> str | None:
    """The first of `inputs` that writing `output` would replace (the same file, or an input
    lying inside `output` when that is a folder), else None."""
    for source in inputs:
        if same_file(output, source) or is_within(source, output):
            return os.fspath(source)
    return None


def listed_outputs(folder: str | os.PathLike[str], names: Iterable[Any]) -> list[str]:
    """Of `names` -- relative paths a command's manifest says its earlier run wrote into
    `folder` -- those that are plain files (not links) lying inside `folder`, as relative
    paths in the manifest's order. Absolute paths, `..`, links and non-strings are dropped:
    a hand-edited or foreign manifest can never make an overwrite remove anything else."""
    folder = os.fspath(folder)
    kept: list[str] = []
    for name in names:
        if not isinstance(name, str) or not name or os.path.isabs(name):
            continue
        parts = name.replace("\\", "/").split("/")
        if any(p in ("", ".", "..") for p in parts):
            continue
        full = os.path.join(folder, *parts)
        if (
            os.path.isfile(full)
            and not os.path.islink(full)
            and is_within(full, folder)
            and name not in kept
        ):
            kept.append(name)
    return kept


def remove_empty_folders(folder: str | os.PathLike[str]) -> None:
    """Removes the empty folders below `folder`, deepest first, then `folder` itself if it is
    empty now. Folders holding any file are left alone; errors are ignored."""
    folder = os.fspath(folder)
    if not os.path.isdir(folder) or os.path.islink(folder):
        return
    for dirpath, _, _ in os.walk(folder, topdown=False):
        try:
            os.rmdir(dirpath)
        except OSError:
            pass
