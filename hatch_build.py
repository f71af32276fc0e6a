"""Wheel build hook: compiles the record reader, ``src/l3ic/record_decoder.c``, into the wheel.

The library is plain C99 with no Python headers, loaded with ctypes (``l3ic.record_decoder``);
the compiler is ``$CC``, else the one Python was built with, else ``cc``.
Without a working C compiler the wheel is built without it (a warning says so) and l3ic reads
records with constriction alone: the same latents, a few times slower.
"""

import os
import shlex
import subprocess
import sysconfig
import tempfile
import warnings
from pathlib import Path

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

SOURCE = Path("src") / "l3ic" / "record_decoder.c"


class RecordDecoderBuild(BuildHookInterface):
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict) -> None:
        if self.target_name != "wheel":
            return
        library = "_record_decoder" + (sysconfig.get_config_var("SHLIB_SUFFIX") or ".so")
        out = Path(tempfile.mkdtemp(prefix="l3ic-build-")) / library
        compiler = shlex.split(os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc")
        command = [*compiler, "-O2", "-std=c99", "-fPIC", "-shared", "-o", str(out)]
        try:
            subprocess.run(
                [*command, str(Path(self.root) / SOURCE), "-lm"],
                check=True, capture_output=True, text=True,
            )  # fmt: skip
        except (OSError, subprocess.CalledProcessError) as e:
            detail = getattr(e, "stderr", "") or str(e)
            warnings.warn(
                f"l3ic: could not compile {SOURCE} ({detail.strip()[:300]}); the wheel reads "
                "records with constriction alone (same results, slower)",
                stacklevel=1,
            )
            return
        build_data["force_include"][str(out)] = f"l3ic/{library}"
        build_data["pure_python"] = False
        build_data["infer_tag"] = True
