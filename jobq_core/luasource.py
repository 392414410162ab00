"""The texts of the Lua scripts of lua/: one file per state transition, each sent with the
helpers of lua/_lib.lua it uses in front (scripts.py runs them). Read once per process."""

from __future__ import annotations

import functools
import re
from importlib import resources

LUA = resources.files("jobq_core") / "lua"


@functools.cache
def names() -> tuple[str, ...]:
    """Every script of lua/ (files not starting with '_'), by name."""
    return tuple(sorted(f.name[:-4] for f in LUA.iterdir()
                        if f.name.endswith(".lua") and not f.name.startswith("_")))


@functools.cache
def source(name: str) -> str:
    """The script `name` with the _lib.lua helpers it uses (directly or through another
    helper) in front. Only those: Redis runs the whole text on every call, and defining
    all fifteen helpers costs more than some scripts' own work. Read once per process."""
    body = (LUA / f"{name}.lua").read_text()
    needed = body
    used: list[str] = []
    for defined, block in reversed(_lib_blocks()):  # a helper only uses helpers above it
        if defined and any(re.search(rf"\b{n}\b", needed) for n in defined):
            used.insert(0, block)
            needed += block
    return "\n\n".join(used) + "\n\n" + body


@functools.cache
def _lib_blocks() -> tuple[tuple[frozenset[str], str], ...]:
    # _lib.lua is blank-line separated blocks, each defining top-level locals.
    lib = (LUA / "_lib.lua").read_text()
    return tuple((frozenset(_DEFINES.findall(b)), b) for b in re.split(r"\n\s*\n", lib))


_DEFINES = re.compile(r"^local (?:function )?(\w+)", re.M)
