"""Dataset conversion: a folder tree of images -> the same tree of .l3ic files and an index.

``SRC/cat/001.png`` becomes ``DST/cat/001.l3ic`` (ImageFolder layout: the class sub-folders are
kept). Files whose suffix is not an image suffix (``image.IMAGE_SUFFIXES``) and hidden files are
ignored. Work runs in ``workers`` processes (the entropy coder and the network hold the GIL),
each loading the network once and compressing ``compress_files.BATCH`` images at a time (images
of one size as one batch through the encoder); with one worker it runs in this process.
Outputs that already exist are skipped, so an interrupted run resumes where it stopped; every
output is written whole or not at all. Unreadable inputs are reported and skipped, and so are
inputs that would share an output (``a.png`` and ``a.jpg``: neither is converted). A DST that
holds a conversion by another preset, other weights or another quality is refused before
anything is written.

``DST/index.json`` lists every converted image (``folder_index``: its format and reader).
"""

import functools
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .. import container
from ..atomic_files import write_atomic, write_json_atomic
from ..errors import L3ICError, one_line
from ..image import is_image_name
from ..presets import load_sidecar, preset_num_channels, resolve_preset, weights_path
from ..rate_control import DEFAULT_QUALITY, quality_scale
from ..runtime import resolve_runtime
from .compress_files import BATCH, compress_files
from .folder_index import INDEX_FORMAT, INDEX_NAME, INDEX_VERSION, read_index
from .pool import run_tasks
from .shards import SHARDS_NAME

__all__ = [
    "Report",
    "check_args",
    "convert",
    "find_images",
    "show_progress",
]


def show_progress(progress: bool | None) -> bool:
    """Whether to draw a progress bar: as asked, or (None) when stderr is a terminal, so that a
    redirected stderr gets whole lines and no bar fragments."""
    return sys.stderr.isatty() if progress is None else bool(progress)


@dataclass
class Report:
    """What a conversion did.

    Attributes:
        converted: images converted by this run.
        skipped: images whose output already existed (kept as they are).
        failed: (source path relative to SRC, one-line reason) of every image not converted.
        warnings: (source path relative to SRC, one-line message) of every warning raised while
            converting an image, e.g. a 16-bit image converted to 8 bits.
        bytes_in: total size of the source files converted by this run.
        bytes_out: total size of the .l3ic files written by this run.
        seconds: wall time of the conversion.
        index: path of the index file written.
        indexed: images listed in the index (converted now or before).
    """

    converted: int = 0
    skipped: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[tuple[str, str]] = field(default_factory=list)
    bytes_in: int = 0
    bytes_out: int = 0
    seconds: float = 0.0
    index: Path | None = None
    indexed: int = 0

    def summary(self) -> str:
        """One line: counts, bytes in/out, throughput."""
        secs = max(self.seconds, 1e-9)
        ratio = self.bytes_in / self.bytes_out if self.bytes_out else 0.0
        return (
            f"converted {self.converted} images ({self.bytes_in / 1e6:.3g} MB -> "
            f"{self.bytes_out / 1e6:.3g} MB, {ratio:.1f}x) in {self.seconds:.1f} s: "
            f"{self.converted / secs:.3g} img/s, {self.bytes_in / 1e6 / secs:.3g} MB/s; "
            f"skipped {self.skipped} existing, {len(self.failed)} failed; "
            f"index {self.index} lists {self.indexed} images"
        )


def find_images(src: Path) -> list[Path]:
    """Image files under ``src`` (recursively, hidden files and folders left out), sorted.

    Returns:
        Paths relative to ``src``.
    """
    found = []
    for folder, dirs, files in os.walk(src):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in files:
            if is_image_name(name):
                found.append(Path(folder, name).relative_to(src))
    return sorted(found)


def check_args(
    src, dst, workers: int, preset: str | None, model: str | None, runtime: str | None
) -> tuple[Path, Path, str, str, str | None]:
    """The checks every conversion makes before it writes anything.

    Returns:
        (src, dst as Paths, the preset, the runtime, the weights' fingerprint or None).

    Raises:
        L3ICError: ``src`` is not a folder, workers < 1, unknown preset or runtime, missing
            weights.
    """
    src, dst = Path(src), Path(dst)
    if not src.is_dir():
        raise L3ICError(f"no such folder: {src}")
    if workers < 1:
        raise L3ICError(f"workers must be at least 1, got {workers}")
    preset = resolve_preset(preset, model)
    runtime = resolve_runtime(runtime)
    preset_num_channels(preset)
    weights_path(preset)
    return src, dst, preset, runtime, load_sidecar(preset).get("fingerprint")


def _label(rel: Path) -> str | None:
    return rel.parts[0] if len(rel.parts) > 1 else None


def _convert_files(
    jobs: list, preset: str, runtime: str, drop_alpha: bool, quality: float = DEFAULT_QUALITY
) -> list[tuple[tuple[int, int, int, int] | str, list[str]]]:
    """Converts the images of ``jobs`` ((rel, source, out) each) with this process's codec of
    ``preset`` (``api.get_codec``, loaded once per process), as one batch (``compress_files``),
    and writes each output atomically.

    Returns:
        Per job: ((width, height, source bytes, output bytes) or a one-line reason for failing,
        one-line messages of the warnings raised).
    """
    from ..api import get_codec

    codec = get_codec(preset, runtime)
    done = compress_files(codec, [source for _, source, _ in jobs], drop_alpha, quality)
    results = []
    for (_, source, out), c in zip(jobs, done, strict=True):
        result = c.failed
        if c.data is not None:
            try:
                write_atomic(out, c.data)
                result = c.shape[1], c.shape[0], source.stat().st_size, len(c.data)
            except OSError as e:
                result = one_line(e)
        results.append((result, c.warnings))
    return results


def _results(
    jobs: list, preset: str, runtime: str, workers: int, drop_alpha: bool, quality: float
) -> Iterator[tuple]:
    """Yields (job, result of ``_convert_files`` for it) as conversions finish, ``BATCH`` jobs
    to a task (``pool.run_tasks``)."""
    chunks = [jobs[i : i + BATCH] for i in range(0, len(jobs), BATCH)]
    task = functools.partial(
        _convert_files, preset=preset, runtime=runtime, drop_alpha=drop_alpha, quality=quality
    )
    for chunk, results in run_tasks(task, chunks, workers):
        yield from zip(chunk, results, strict=True)


def _existing(path: Path) -> container.Container | str:
    """The parsed existing output ``path``, or why it cannot be kept."""
    try:
        return container.parse(path.read_bytes())
    except (L3ICError, OSError) as e:
        return f"output {path} exists but is unreadable ({e}); delete it to convert again"


def _check_dst(
    dst: Path,
    existing: dict[Path, container.Container | str],
    preset: str,
    fp: str | None,
    quality: float = DEFAULT_QUALITY,
) -> None:
    """Raises L3ICError if ``dst`` holds a conversion by another preset, other weights or at
    another quality.

    Both ``dst/index.json`` (if it lists images) and the outputs of this run that already exist
    are checked.

    Args:
        dst: the output folder.
        existing: ``_existing`` of the outputs of this run that exist, by path relative to dst.
        preset, fp: the preset converting and its weights fingerprint (None: not known).
        quality: the quality converting (0..100).
    """
    if (dst / SHARDS_NAME).exists():
        raise L3ICError(f"{dst} holds tar shards ({SHARDS_NAME}); use another DST")
    index_path = dst / INDEX_NAME
    if index_path.exists():
        try:
            index = read_index(dst)
        except L3ICError:
            raise L3ICError(
                f"{index_path} exists and is not an l3ic index that this l3ic reads; "
                "use another DST or delete it"
            ) from None
        items = index.get("items") or []  # an index listing nothing holds no conversion
        if items:
            example = dst / items[0]["path"]
            _refuse_other(dst, example, index["preset"], index.get("fingerprint"), preset, fp)
            held = index.get("quality", DEFAULT_QUALITY)
            if held != quality:
                _refuse_quality(dst, example, f"quality {held:g}", quality)
    for rel, c in existing.items():
        if not isinstance(c, str):
            _refuse_other(dst, dst / rel, c.preset, c.fingerprint.hex(), preset, fp)
            if c.scale != quality_scale(quality):
                _refuse_quality(dst, dst / rel, f"scale {c.scale:g}", quality)


def _refuse_quality(dst: Path, example: Path, held: str, quality: float) -> None:
    """Raises the L3ICError of a ``dst`` converted at another quality (``held``, in words)."""
    raise L3ICError(
        f"{dst} already holds a conversion at {held} (e.g. {example}); to convert at "
        f"quality {quality:g}, use another DST or delete {dst} first"
    )


def _refuse_other(
    dst: Path, example: Path, held: str | None, held_fp: str | None, preset: str, fp: str | None
) -> None:
    """Raises L3ICError unless ``example`` was written by ``preset`` with weights ``fp``."""
    if held == preset and (fp is None or held_fp == fp):
        return
    by, wanted = f"preset {held}", f"preset {preset}"
    if held == preset:
        by, wanted = f"other weights of preset {preset} ({held_fp})", f"these weights ({fp})"
    raise L3ICError(
        f"{dst} already holds a conversion by {by} (e.g. {example}); to convert with {wanted}, "
        f"use another DST or delete {dst} first"
    )


def _shared_output(rels: list[Path], out: Path) -> str:
    """Why the inputs ``rels``, which would all be written to ``out``, are not converted."""
    names = ", ".join(rel.as_posix() for rel in rels[:-1]) + f" and {rels[-1].as_posix()}"
    both, which = ("both", "one") if len(rels) == 2 else ("all", "all but one")
    return f"{names} would {both} be written to {out}; rename {which}"


def convert(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    preset: str | None = None,
    workers: int = 1,
    drop_alpha: bool = False,
    progress: bool | None = None,
    *,
    quality: float | None = None,
    runtime: str | None = None,
    model: str | None = None,
) -> Report:
    """Converts the image tree ``src`` to .l3ic files under ``dst`` and writes ``dst/index.json``.

    Args:
        src: folder of images, e.g. ImageFolder layout ``src/<class>/<image>``.
        dst: output folder (created if needed); may already hold a previous run's outputs.
        preset: preset to compress with (default ``presets.DEFAULT_PRESET``; ``model=`` is its
            deprecated name).
        workers: processes to convert with (1: in this process).
        drop_alpha: discard alpha channels instead of failing on RGBA images.
        progress: show a progress bar on stderr (None: when stderr is a terminal).
        quality: 0..100, as ``l3ic.compress``'s (default 50, the preset as trained); a run
            resumes only at the quality it started with.
        runtime: the network's runtime, "auto", "onnx", "openvino" or "keras" (default
            ``$L3IC_RUNTIME``, else "auto"); the files do not depend on it.

    Returns:
        The Report; failed images and warnings are listed there, not raised.

    Raises:
        L3ICError: ``src`` is not a folder, unknown preset or missing weights, workers < 1;
            ``dst`` holds a conversion by another preset or other weights, or an ``index.json``
            that is not an l3ic index (then nothing is written).
    """
    from tqdm import tqdm

    src, dst, preset, runtime, fp = check_args(src, dst, workers, preset, model, runtime)
    quality = DEFAULT_QUALITY if quality is None else quality
    quality_scale(quality)  # checked before any work
    sources = find_images(src)
    inputs = {}  # output path relative to dst -> the sources that would be written there
    for rel in sources:
        inputs.setdefault(rel.with_suffix(".l3ic"), []).append(rel)
    existing = {out: _existing(dst / out) for out in inputs if (dst / out).exists()}
    _check_dst(dst, existing, preset, fp, quality)
    dst.mkdir(parents=True, exist_ok=True)
    report, done, jobs = Report(), {}, []
    for out_rel, rels in inputs.items():
        rel, out = rels[0], dst / out_rel
        if len(rels) > 1:
            report.failed += [(str(r), _shared_output(rels, out)) for r in rels]
        elif out_rel not in existing:
            out.parent.mkdir(parents=True, exist_ok=True)
            jobs.append((rel, src / rel, out))
        elif isinstance(kept := existing[out_rel], str):
            report.failed.append((str(rel), kept))
        else:
            report.skipped += 1
            done[rel] = (kept.width, kept.height, out.stat().st_size)
    t0 = time.perf_counter()
    bar = tqdm(
        total=len(jobs),
        unit="img",
        file=sys.stderr,
        disable=not show_progress(progress),
        leave=False,
    )
    with bar:
        results = _results(jobs, preset, runtime, workers, drop_alpha, quality)
        for (rel, _, _), (result, caught) in results:
            bar.update()
            report.warnings += [(str(rel), message) for message in caught]
            if isinstance(result, str):
                report.failed.append((str(rel), result))
                bar.set_postfix(failed=len(report.failed))
                continue
            width, height, n_in, n_out = result
            report.converted += 1
            report.bytes_in += n_in
            report.bytes_out += n_out
            done[rel] = (width, height, n_out)
    report.seconds = time.perf_counter() - t0
    classes = sorted({label for rel in sources if (label := _label(rel)) is not None})
    items = [
        {
            "path": rel.with_suffix(".l3ic").as_posix(),
            "source": rel.as_posix(),
            "label": _label(rel),
            "label_index": classes.index(_label(rel)) if _label(rel) is not None else -1,
            "width": width,
            "height": height,
            "bytes": n_out,
        }
        for rel, (width, height, n_out) in sorted(done.items())
    ]
    index = {
        "format": INDEX_FORMAT,
        "version": INDEX_VERSION,
        "preset": preset,
        "fingerprint": fp,
        "quality": quality,
        "classes": classes,
        "items": items,
    }
    report.index = dst / INDEX_NAME
    report.indexed = len(items)
    write_json_atomic(report.index, index)
    report.failed.sort()
    report.warnings.sort()
    return report
