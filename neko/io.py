"""Files the way every part of neko reads and writes them: the one home of file IO.

Writing is atomic (a temporary file in the same folder, fsynced, then `os.replace`), so a reader never
sees half a file and a failed run leaves the old file whole. A replaced file keeps its permissions; a
new one gets the usual ones (0666 less the umask). A symlink is written through: its target is
replaced, the link stays. A device, pipe or socket (`/dev/null`, `/dev/stdout`) is written straight
into: there is no file to replace. `check_writable` (and `check_writable_folder`) refuse, before any
work starts, a path that cannot be written.

Reading is strict UTF-8 (a leading byte-order mark is dropped), gzip-compressed when the name ends in
`.gz`, and splits lines on "\\n" only (a trailing "\\r" of a Windows line end is dropped; a form feed or
U+2028 inside a line stays in it). JSON Lines are written with every line separator escaped, so any
tool (and neko) reads back each line whole. Every problem is a one-line `NekoError` naming the file
and, where there is one, the line.
"""

from __future__ import annotations

import errno
import gzip
import io
import json
import os
import re
import secrets
import shutil
import stat
import tempfile
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from neko.errors import NekoError

BOM = "\ufeff"
MAX_JSON_DEPTH = 100
"""Deeper JSON is refused: nothing neko reads nests more than a few levels, and Python's recursion
limit would otherwise turn a hostile file into a crash."""

# Characters json.dumps(ensure_ascii=False) leaves raw that str.splitlines() and JavaScript treat as
# line ends; every other line separator (\n, \r, \v, \f, \x1c-\x1e) json.dumps escapes itself.
_RAW_LINE_SEPARATORS = str.maketrans({"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"})
# A lone surrogate can only come from a \uD800-\uDFFF escape: strict UTF-8 decoding refuses the rest.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_OPEN_BRACKETS = ("[", "{")


def is_compressed(path: str | Path) -> bool:
    return str(path).endswith(".gz")


# ---------------------------------------------------------------------------------------------------
# Checking before the work


def check_writable(path: str | Path) -> Path:
    """`path` as a file neko can write, or a one-line error: call it before the work that makes the
    content, so a mistyped `--out` fails at once instead of after an hour of decoding."""
    path = Path(path)
    if is_stream(path):
        if not os.access(path, os.W_OK):
            raise NekoError(f"{path}: cannot write (permission denied)")
        return path
    target = Path(os.path.realpath(path))
    if target.is_dir():
        raise NekoError(f"{path}: is a folder, expected a file to write")
    if target.exists() and not os.access(target, os.W_OK):
        raise NekoError(f"{path}: the file is read-only")
    _check_parent(path, target.parent)
    return target


def is_stream(path: str | Path) -> bool:
    """Whether `path` is a device, pipe or socket (its link followed): written into as it is."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def check_not_input(out: str | Path, inputs: Iterable[str | Path]) -> None:
    """Refuse an output path that is one of the inputs (or a link to one): the results would replace
    the data the user gave."""
    for given in inputs:
        if str(given) != "-" and Path(out).exists() and Path(given).exists() and os.path.samefile(out, given):
            raise NekoError(f"{out}: is the input file {given}; write the output elsewhere")


def check_writable_folder(path: str | Path) -> Path:
    """`path` as a folder neko can write files into (made when missing), or a one-line error."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise NekoError(f"{path}: is a file, expected a folder")
    if path.is_dir():
        if not os.access(path, os.W_OK | os.X_OK):
            raise NekoError(f"{path}: cannot write in this folder (permission denied)")
        return path
    _check_parent(path, path.parent)
    return path


def _check_parent(path: Path, parent: Path) -> None:
    """The nearest existing folder above `path` must be a folder neko may write in."""
    existing = parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise NekoError(f"{path}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise NekoError(f"{path}: cannot write in {existing} (permission denied)")


# ---------------------------------------------------------------------------------------------------
# Writing


STORAGE_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EFBIG, errno.EROFS}
"""Errors of the storage itself (full, over quota, failing, read-only): a one-line error naming the
file being written, whichever write, flush or fsync met them."""


@contextmanager
def atomic_write(path: str | Path, compressed: bool | None = None) -> Iterator[IO[str]]:
    """A UTF-8 text handle whose content replaces `path` when the block ends without an error.

    `compressed` (default: the name ends in `.gz`) gzips the content; the gzip header carries no
    time stamp, so the same content gives the same bytes.
    """
    with atomic_binary(path) as raw:
        compress = is_compressed(path) if compressed is None else compressed
        stream: IO[bytes] = gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) if compress else raw
        handle = io.TextIOWrapper(stream, encoding="utf-8", newline="")
        try:
            yield handle
        except UnicodeEncodeError as error:
            raise NekoError(f"{path}: cannot write {_describe(error.object[error.start])}") from None
        finally:
            handle.flush()
            handle.detach()  # `raw` stays open for atomic_binary's fsync
            if compress:
                stream.close()  # writes the gzip trailer (into a temporary that a failure deletes)


@contextmanager
def atomic_binary(path: str | Path) -> Iterator[IO[bytes]]:
    """A binary handle whose content replaces `path` (its mode kept) when the block ends without an
    error, synced to disk first; on an error the old file stays and no temporary is left. A device
    or pipe is written straight into."""
    target = check_writable(path)
    if is_stream(target):
        yield from _stream(path)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
    try:
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # umask applies
    except OSError as error:
        raise NekoError(f"{path}: cannot write ({_reason(error)})") from None
    try:
        with os.fdopen(descriptor, "wb") as raw:
            yield raw
            raw.flush()
            os.fsync(raw.fileno())
        if target.exists():
            os.chmod(temporary, stat.S_IMODE(target.stat().st_mode))
        os.replace(temporary, target)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        if error.errno in STORAGE_ERRORS:
            raise NekoError(f"{path}: cannot write ({_reason(error)})") from None
        raise
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    _fsync_folder(target.parent)


def _stream(path: str | Path) -> Iterator[IO[bytes]]:
    try:
        raw = open(path, "wb")  # noqa: SIM115 (closed by the with below, whose errors are reported)
    except OSError as error:
        raise NekoError(f"{path}: cannot write ({_reason(error)})") from None
    try:
        with raw:
            yield raw
    except OSError as error:
        if error.errno in STORAGE_ERRORS or error.errno == errno.EPIPE:
            raise NekoError(f"{path}: cannot write ({_reason(error)})") from None
        raise


def give_usual_mode(*paths: str | Path) -> None:
    """Give files and folders made privately (transformers writes its weights 0600, `mkdtemp` makes
    its folder 0700) the mode a new one gets (0666 for a file, 0777 for a folder, less the umask), so
    that a model directory is as readable as the rest."""
    umask = os.umask(0)
    os.umask(umask)
    for path in paths:
        os.chmod(path, (0o777 if Path(path).is_dir() else 0o666) & ~umask)


@contextmanager
def atomic_folder(out: str | Path, replace: bool = False) -> Iterator[Path]:
    """A fresh folder beside `out` to write into, renamed to `out` (missing, or an empty folder) once
    the block succeeds: a reader never sees half a model directory, and a failure leaves none.
    `replace`: a folder already at `out` is swapped out for the new one, and only then deleted."""
    out = Path(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
        give_usual_mode(staging)  # mkdtemp's folder is private; the model is not
    except OSError as error:
        raise NekoError(f"{out}: cannot create it ({error.strerror})") from None
    try:
        yield staging
        old = None
        if replace and out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old.", dir=out.parent))
            os.replace(out, old / out.name)
        os.replace(staging, out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def write_text(path: str | Path, text: str, compressed: bool | None = None) -> None:
    """Replace `path` with `text` atomically (gzipped when the name ends in `.gz`)."""
    with atomic_write(path, compressed) as handle:
        handle.write(text)


def write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_binary(path) as handle:
        handle.write(data)


def write_figure(path: str | Path, figure: Any, dpi: int) -> None:
    """A matplotlib figure saved as `path` (its format from the name) in one atomic write."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format=Path(path).suffix.lstrip(".") or "png", dpi=dpi)
    write_bytes(path, buffer.getvalue())


def write_json(path: str | Path, value: Any, indent: int | None = 2) -> None:
    """Replace `path` with `value` as JSON (non-ASCII kept as is), atomically."""
    write_text(path, json.dumps(value, indent=indent, ensure_ascii=False) + "\n")


def json_line(value: Any) -> str:
    """`value` as one line of JSON Lines, newline included: every line separator inside it escaped."""
    return json.dumps(value, ensure_ascii=False).translate(_RAW_LINE_SEPARATORS) + "\n"


def write_json_lines(path: str | Path, records: Iterable[Any], compressed: bool | None = None) -> int:
    """Replace `path` with one JSON value per line, atomically; returns how many were written."""
    count = 0
    with atomic_write(path, compressed) as handle:
        for record in records:
            handle.write(json_line(record))
            count += 1
    return count


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable; some file systems cannot open a folder, which is fine."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


# ---------------------------------------------------------------------------------------------------
# Reading


def read_bytes(path: str | Path, compressed: bool | None = None) -> bytes:
    """The bytes of a file (decompressed when the name ends in `.gz`); one-line errors."""
    path = Path(path)
    compress = is_compressed(path) if compressed is None else compressed
    _check_readable(path, compress)
    try:
        data = path.read_bytes()
        if compress:
            data = gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as error:
        raise NekoError(f"{path}: cannot read ({_reason(error)})") from None
    return data


def read_text(path: str | Path, compressed: bool | None = None) -> str:
    """A UTF-8 file as text, a leading byte-order mark dropped; line ends are left as they are."""
    return decode_text(read_bytes(path, compressed), str(path))


def decode_text(data: bytes, name: str) -> str:
    """Strict UTF-8 (a leading byte-order mark dropped); the error names the line of the bad byte."""
    try:
        return data.decode("utf-8").removeprefix(BOM)
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise NekoError(f"{name}:{line}: not UTF-8 text (byte {error.start})") from None


def split_lines(text: str) -> list[str]:
    """Lines split on "\\n" only; a trailing "\\r" (Windows line end) is dropped, no final empty line."""
    if not text:
        return []
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return [line.removesuffix("\r") for line in lines]


def read_lines(path: str | Path) -> list[str]:
    """The lines of a UTF-8 text file (gzipped when the name ends in `.gz`), as `split_lines` makes them."""
    return split_lines(read_text(path))


def parse_json(text: str, where: str) -> Any:
    """Decode JSON, or a one-line error naming `where` (and the line within `text` when it has many)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        place = f"{where}:{error.lineno}" if error.lineno > 1 or "\n" in text.rstrip() else where
        raise NekoError(f"{place}: not valid JSON: {error.msg} (column {error.colno})") from None
    except RecursionError:
        raise NekoError(f"{where}: not valid JSON: nested more than {MAX_JSON_DEPTH} levels deep") from None
    except ValueError:  # int() refuses numbers of more than sys.get_int_max_str_digits() digits
        raise NekoError(f"{where}: not valid JSON: a number too long to read") from None
    if _SURROGATE_ESCAPE.search(text) or sum(text.count(b) for b in _OPEN_BRACKETS) > MAX_JSON_DEPTH:
        _check_json_value(value, where)
    return value


def read_json(path: str | Path) -> Any:
    """A JSON file (UTF-8, gzipped when the name ends in `.gz`); one-line errors name file:line."""
    return parse_json(read_text(path), str(path))


def read_json_object(path: str | Path) -> dict[str, Any]:
    """A JSON file that must hold an object (a config, a tokenizer); one-line errors as `read_json`'s."""
    value = read_json(path)
    if not isinstance(value, dict):
        raise NekoError(f"{path}: expected a JSON object, got {type(value).__name__}")
    return value


def read_json_lines(path: str | Path, torn_tail: bool = False) -> Iterator[tuple[str, int, Any]]:
    """(`file:line`, line number, decoded value) of each non-blank line of a JSON Lines file (gzipped
    when the name ends in `.gz`), read as it goes; every problem is a one-line error naming file:line.

    `torn_tail`: a last line without its newline that is not UTF-8 JSON is left out instead, as in a
    log that a killed process was appending to."""
    path = Path(path)
    _check_readable(path, is_compressed(path))
    number = 0
    try:
        with open(path, "rb") as raw, _maybe_gunzip(raw, is_compressed(path)) as lines:
            for number, data in enumerate(lines, start=1):
                where = f"{path}:{number}"
                try:
                    line = _decode_line(data, where, first=number == 1)
                    value = parse_json(line, where) if line.strip() else None
                except NekoError:
                    if torn_tail and not data.endswith(b"\n"):
                        return
                    raise
                if line.strip():
                    yield where, number, value
    except (OSError, EOFError, zlib.error) as error:
        raise NekoError(f"{path}:{number + 1}: cannot read ({_reason(error)})") from None


def _decode_line(data: bytes, where: str, first: bool) -> str:
    try:
        line = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise NekoError(f"{where}: not UTF-8 text (byte {error.start} of the line)") from None
    return line.removeprefix(BOM) if first else line


@contextmanager
def _maybe_gunzip(raw: IO[bytes], compressed: bool) -> Iterator[IO[bytes]]:
    if not compressed:
        yield raw
        return
    with gzip.GzipFile(fileobj=raw, mode="rb") as unpacked:
        yield unpacked


def _check_readable(path: Path, compressed: bool = False) -> None:
    """A one-line error for a path that is no readable file; a gzip file holds at least its header,
    so an empty one was cut short (gzip itself would read it as empty content)."""
    if not path.exists():
        raise NekoError(f"{path}: no such file")
    if path.is_dir():
        raise NekoError(f"{path}: is a folder, expected a file")
    if compressed and path.is_file() and path.stat().st_size == 0:
        raise NekoError(f"{path}: cannot read (not a valid gzip file: the file is empty)")


def _check_json_value(value: Any, where: str) -> None:
    """Refuse what JSON can spell but neko cannot hold: nesting deeper than `MAX_JSON_DEPTH`, and lone
    surrogates (half of a UTF-16 pair), which no UTF-8 file can store."""
    pending = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, str):
            surrogate = _first_surrogate(item)
            if surrogate is not None:
                raise NekoError(f"{where}: text holds {_describe(surrogate)}")
            continue
        if not isinstance(item, list | dict):
            continue
        if depth > MAX_JSON_DEPTH:
            raise NekoError(f"{where}: not valid JSON: nested more than {MAX_JSON_DEPTH} levels deep")
        children = [*item.keys(), *item.values()] if isinstance(item, dict) else item
        pending.extend((child, depth + 1) for child in children)


def _first_surrogate(text: str) -> str | None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        return text[error.start]
    return None


def _describe(character: str) -> str:
    if "\ud800" <= character <= "\udfff":
        return f"the lone surrogate \\u{ord(character):04x} (half of a UTF-16 pair, not a character)"
    return f"{character!r}"


def _reason(error: BaseException) -> str:
    if isinstance(error, EOFError):
        return "the compressed file is truncated"
    if isinstance(error, zlib.error | gzip.BadGzipFile):
        return f"not a valid gzip file: {error}"
    return getattr(error, "strerror", None) or str(error) or type(error).__name__
