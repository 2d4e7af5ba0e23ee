"""Find, download, cache and verify the frozen graphs of CAVlib's models.

Where a graph comes from, first match wins:

1. the `model_path=` argument;
2. the environment variable of the model (`KERAS_INTERP_GOOGLENET_PATH`,
   `KERAS_INTERP_MOBILENET_PATH`);
3. the cache: `$KERAS_INTERP_CACHE/<model>/<file>`, by default
   `~/.keras/keras_interp/<model>/<file>`;
4. a download of the archive CAVlib uses (URLs of CAVlib's
   `resources/download_models.py`), with the `.pb` extracted into the cache.

Checksums: no checksum was ever published for these archives and we could not
download them while writing this module, so `GraphSource.sha256` is `None`
(unknown). The first successful download records the sha256 of the extracted
file in a `<file>.sha256` note beside it, and every later load verifies the file
against that note (the same holds for any file, e.g. under `model_path=`, that
has a `.sha256` note beside it); a mismatch is a `ChecksumError`. Once the real
digest is known, set it in `SOURCES` and downloads are checked against it too.
Downloads go to a temporary file in the cache directory, renamed into place only
once complete, so an interrupted download never leaves a truncated graph.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import pathlib
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from typing import Any

from keras_interp._validation import received

logger = logging.getLogger("keras_interp")

#: The environment variable that moves the cache directory.
CACHE_ENV = "KERAS_INTERP_CACHE"


@dataclasses.dataclass(frozen=True)
class GraphSource:
    """Where one frozen graph comes from.

    Attributes:
        name: the cache sub-directory, e.g. `"googlenet"`.
        description: what the file is, for messages.
        url: the archive (`.zip`, `.tgz`) or bare `.pb` to download.
        filename: the graph's file name inside the archive and in the cache.
        env_var: the environment variable that points to a local copy.
        extras: other archive members kept beside the graph (labels, LICENSE).
        sha256: the graph file's recorded sha256, `None` while unknown.
    """

    name: str
    description: str
    url: str
    filename: str
    env_var: str
    extras: tuple[str, ...] = ()
    sha256: str | None = None


_BASE = "https://storage.googleapis.com/download.tensorflow.org/models"

#: The graphs CAVlib's models are converted from.
SOURCES: dict[str, GraphSource] = {
    "googlenet": GraphSource(
        name="googlenet",
        description="GoogLeNet (inception5h) frozen graph",
        url=f"{_BASE}/inception5h.zip",
        filename="tensorflow_inception_graph.pb",
        env_var="KERAS_INTERP_GOOGLENET_PATH",
        extras=("imagenet_comp_graph_label_strings.txt", "LICENSE"),
        sha256=None,  # unknown: recorded in a .sha256 note at first download
    ),
    "mobilenet": GraphSource(
        name="mobilenet",
        description="MobileNet v1 1.0/224 frozen graph",
        url=f"{_BASE}/mobilenet_v1_2018_02_22/mobilenet_v1_1.0_224.tgz",
        filename="mobilenet_v1_1.0_224_frozen.pb",
        env_var="KERAS_INTERP_MOBILENET_PATH",
        sha256=None,  # unknown: recorded in a .sha256 note at first download
    ),
}


class DownloadError(OSError):
    """A graph could not be downloaded (offline, HTTP error, bad archive)."""


class ChecksumError(ValueError):
    """A file's sha256 differs from the one recorded for it."""


def cache_dir() -> pathlib.Path:
    """The cache directory: `$KERAS_INTERP_CACHE` or `~/.keras/keras_interp`."""
    root = os.environ.get(CACHE_ENV)
    return pathlib.Path(root) if root else pathlib.Path.home() / ".keras/keras_interp"


def cached_path(source: GraphSource) -> pathlib.Path:
    """Where the cache keeps `source`'s graph file."""
    return cache_dir() / source.name / source.filename


def sha256_of(path: os.PathLike | str) -> str:
    """The hex sha256 digest of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify(path: os.PathLike | str, expected: str | None = None) -> str:
    """Check a file against `expected` and against its `.sha256` note.

    Args:
        path: the file.
        expected: a hex sha256, or `None` to check only the note (if any).

    Returns:
        The file's sha256.

    Raises:
        ChecksumError: the digest differs from `expected` or from the note.
    """
    path = pathlib.Path(path)
    note = path.with_name(path.name + ".sha256")
    wanted = [(expected, "the digest recorded in keras_interp")]
    if note.is_file():
        wanted.append((note.read_text().split()[0].lower(), f"the note {note}"))
    if not any(value for value, _ in wanted):
        return ""  # nothing recorded: do not spend time hashing
    actual = sha256_of(path)
    for value, origin in wanted:
        if value and value.lower() != actual:
            raise ChecksumError(
                f"The file {path} has sha256 {actual}, but {origin} says "
                f"{value.lower()}: the file is corrupt or was replaced. Delete "
                f"it (and {note.name}) to download it again, or replace it by "
                f"the right file. {received('path', str(path))}"
            )
    return actual


def resolve_graph_path(
    name: str, model_path: Any = None, *, download: bool = True
) -> pathlib.Path:
    """The local path of a model's frozen graph, downloading it if needed.

    Args:
        name: a key of `SOURCES` (`"googlenet"`, `"mobilenet"`).
        model_path: a local file that takes precedence over everything.
        download: whether a missing graph may be downloaded into the cache.

    Returns:
        The path of an existing, verified graph file.

    Raises:
        FileNotFoundError: `model_path` or the environment variable names a
            missing file, or the graph is not cached and `download=False`.
        DownloadError: the download failed (the message says where to put the
            file by hand).
        ChecksumError: the file does not match its recorded sha256.
    """
    source = SOURCES[name]
    if model_path is not None:
        return _existing(model_path, "model_path", source)
    if os.environ.get(source.env_var):
        return _existing(os.environ[source.env_var], source.env_var, source)
    path = cached_path(source)
    if not path.is_file():
        if not download:
            raise FileNotFoundError(
                f"The {source.description} is not in the cache. "
                f"{_where_to_put(source)} {received('path', str(path))}"
            )
        download_graph(source)
    verify(path, source.sha256)
    return path


def _existing(value: Any, arg: str, source: GraphSource) -> pathlib.Path:
    try:
        path = pathlib.Path(os.fspath(value)).expanduser()
    except TypeError:
        raise TypeError(
            f"`{arg}` must be a path to the {source.description} "
            f"(`{source.filename}`). {received(arg, value)}"
        ) from None
    if not path.is_file():
        raise FileNotFoundError(
            f"`{arg}` must name an existing file, the {source.description} "
            f"(`{source.filename}`); no file is there. {received(arg, str(value))}"
        )
    verify(path)
    return path


def _where_to_put(source: GraphSource) -> str:
    return (
        f"Get {source.url} by other means, extract `{source.filename}` and either "
        f"put it at {cached_path(source)}, or set the environment variable "
        f"{source.env_var} to its path, or pass `model_path=` (its path)."
    )


def download_graph(source: GraphSource, *, timeout: float = 60.0) -> pathlib.Path:
    """Download `source.url` and extract the graph (and extras) into the cache.

    The archive is streamed to a temporary file in the cache directory; each
    extracted file is written to a temporary file and renamed into place
    (atomic on one file system), then the graph's sha256 is checked against
    `source.sha256` when known and recorded in `<file>.sha256`.

    Args:
        source: what to download.
        timeout: seconds before a stalled connection fails.

    Returns:
        The path of the cached graph file.

    Raises:
        DownloadError: the URL cannot be fetched or is not the expected
            archive; the message names the URL and where to put the file.
        ChecksumError: the downloaded graph differs from `source.sha256`.
    """
    target = cached_path(source)
    target.parent.mkdir(parents=True, exist_ok=True)
    logger.warning("Downloading the %s from %s", source.description, source.url)
    suffix = "".join(pathlib.PurePosixPath(source.url).suffixes[-2:])
    fd, archive = tempfile.mkstemp(dir=target.parent, prefix=".get-", suffix=suffix)
    try:
        try:
            with os.fdopen(fd, "wb") as out:
                with urllib.request.urlopen(source.url, timeout=timeout) as response:
                    shutil.copyfileobj(response, out, 1 << 20)
        except (urllib.error.URLError, OSError, ValueError) as error:
            raise DownloadError(
                f"Could not download the {source.description} from {source.url} "
                f"({error}). {_where_to_put(source)} {received('url', source.url)}"
            ) from error
        members = (source.filename, *source.extras)
        extracted = _extract(archive, source, members, target.parent)
    finally:
        pathlib.Path(archive).unlink(missing_ok=True)
    digest = sha256_of(extracted[source.filename])
    if source.sha256 and digest != source.sha256.lower():
        for path in extracted.values():
            path.unlink(missing_ok=True)
        raise ChecksumError(
            f"The {source.description} downloaded from {source.url} has sha256 "
            f"{digest}, not the recorded {source.sha256}. "
            f"{received('url', source.url)}"
        )
    for member, temporary in extracted.items():
        os.replace(temporary, target.parent / member)
    note = target.with_name(target.name + ".sha256")
    _write_atomic(note, f"{digest}  {target.name}\n".encode())
    return target


def _extract(
    archive: str, source: GraphSource, members: tuple[str, ...], folder: pathlib.Path
) -> dict[str, pathlib.Path]:
    """Copy the wanted members (matched by base name) to temporary files."""
    found: dict[str, pathlib.Path] = {}
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as z:
                for info in z.infolist():
                    base = pathlib.PurePosixPath(info.filename).name
                    if base in members and base not in found:
                        with z.open(info) as data:
                            found[base] = _temporary_copy(data, folder)
        elif tarfile.is_tarfile(archive):
            with tarfile.open(archive, "r:*") as tar:
                for info in tar.getmembers():
                    base = pathlib.PurePosixPath(info.name).name
                    if info.isfile() and base in members and base not in found:
                        found[base] = _temporary_copy(tar.extractfile(info), folder)
        elif source.url.endswith(".pb"):  # a bare graph file
            with open(archive, "rb") as data:
                found[source.filename] = _temporary_copy(data, folder)
        else:
            raise OSError("neither a zip nor a tar archive")
    except (OSError, zipfile.BadZipFile, tarfile.TarError) as error:
        for path in found.values():
            path.unlink(missing_ok=True)
        raise DownloadError(
            f"The archive downloaded from {source.url} cannot be read ({error}). "
            f"{_where_to_put(source)} {received('url', source.url)}"
        ) from error
    if source.filename not in found:
        for path in found.values():
            path.unlink(missing_ok=True)
        raise DownloadError(
            f"The archive downloaded from {source.url} has no `{source.filename}`. "
            f"{_where_to_put(source)} {received('url', source.url)}"
        )
    return found


def _temporary_copy(data: Any, folder: pathlib.Path) -> pathlib.Path:
    fd, name = tempfile.mkstemp(dir=folder, prefix=".extract-")
    with os.fdopen(fd, "wb") as out:
        shutil.copyfileobj(data, out, 1 << 20)
    return pathlib.Path(name)


def _write_atomic(path: pathlib.Path, content: bytes) -> None:
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=".note-")
    with os.fdopen(fd, "wb") as out:
        out.write(content)
    os.replace(name, path)
