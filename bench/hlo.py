"""Collectives in an optimised HLO module (`compiled.as_text()`): count and bytes by kind.

Kinds: `all-gather`, `reduce-scatter`, `all-reduce`, `all-to-all`, `collective-permute`.
Spellings by back-end: plain ops (`all-reduce(`), async pairs on GPU (`all-gather-start(`
… `-done`: the `-start` is counted, once), and on TPU reduce-scatters appear as fusions
calling a computation named `all-reduce-scatter…` (counted as `reduce-scatter`; the
`all-reduce` ops inside such a computation are its body, not separate collectives).
Bytes of one collective: its larger side, i.e. the gathered result of an all-gather, the
reduced input of a reduce-scatter, the buffer of an all-reduce / all-to-all / permute.

The counts are static (instructions in the module): a collective inside a loop body
counts once whatever the trip count.
"""

from __future__ import annotations

import dataclasses
import re

KINDS = ("all-gather", "reduce-scatter", "all-reduce", "all-to-all", "collective-permute")
# Wire bytes per byte of a collective, ring algorithm on n → ∞ devices: an all-reduce is a
# reduce-scatter then an all-gather (2×); the others move each byte once.
WIRE_FACTOR = {"all-gather": 1.0, "reduce-scatter": 1.0, "all-reduce": 2.0,
               "all-to-all": 1.0, "collective-permute": 1.0}

_ITEMSIZE = {"pred": 1, "s8": 1, "u8": 1, "s16": 2, "u16": 2, "f16": 2, "bf16": 2, "s32": 4,
             "u32": 4, "f32": 4, "s64": 8, "u64": 8, "f64": 8, "c64": 8, "c128": 16,
             "f8e4m3fn": 1, "f8e5m2": 1, "s4": 1, "u4": 1}
_SHAPE = re.compile(r"\b(" + "|".join(_ITEMSIZE) + r")\[([0-9,]*)\]")
# `[ROOT] %name = TYPE op(operands), attributes`; TYPE may be a tuple `(f32[..], f32[..])`
INSTRUCTION = re.compile(r"^\s*(?:ROOT\s+)?%(?P<name>[\w.\-]+)\s*=\s*(?P<type>.+?)\s+"
                    r"(?P<op>[a-z][\w\-]*)\((?P<rest>.*)$")
# `%name (params) -> type {` or `ENTRY %name ...{`
_COMPUTATION = re.compile(r"^(?:ENTRY\s+)?%(?P<name>[\w.\-]+)\s*[({]")
_OPERAND = re.compile(r"%([\w.\-]+)")


@dataclasses.dataclass
class Collective:
    count: int = 0
    bytes: int = 0


_LAYOUT_SPACE = re.compile(r"\[[0-9,]*\](\{[^}]*\})?")


def shape_bytes(text: str, main_memory_only: bool = False) -> int:
    """Bytes of the array shapes in `text` (an HLO type, e.g. `(f32[2,3], bf16[4])`).
    `main_memory_only`: leave out arrays whose layout places them in another memory space
    (`S(1)`: XLA:TPU's on-chip VMEM, where memory-space assignment stages operands)."""
    total = 0
    spaces = [m.group(1) or "" for m in _LAYOUT_SPACE.finditer(text)]
    for (dtype, dims), layout in zip(_SHAPE.findall(text), spaces, strict=True):
        if main_memory_only and re.search(r"S\([1-9]", layout):
            continue
        size = 1
        for d in filter(None, dims.split(",")):
            size *= int(d)
        total += size * _ITEMSIZE[dtype]
    return total


def _kind(op: str, rest: str) -> str | None:
    base = op[:-len("-start")] if op.endswith("-start") else op
    if base in KINDS:
        return base
    if op == "fusion" and re.search(r"calls=%all-reduce-scatter", rest):
        return "reduce-scatter"
    return None


def _operands(rest: str) -> list[str]:
    depth, end = 1, len(rest)
    for i, ch in enumerate(rest):  # the operand list ends at the matching parenthesis
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if depth == 0:
            end = i
            break
    return _OPERAND.findall(rest[:end])


def _collective_instructions(lines: list[str]):
    """`(kind, instruction match)` of each collective of the module's text, in order; the
    body of a TPU reduce-scatter fusion is skipped (its call counts)."""
    computation = ""
    for line in lines:
        header = _COMPUTATION.match(line)
        if header:
            computation = header.group("name")
            continue
        m = INSTRUCTION.match(line)
        if not m or computation.startswith("all-reduce-scatter"):
            continue
        kind = _kind(m.group("op"), m.group("rest"))
        if kind is not None:
            yield kind, m


def collectives(hlo_text: str) -> dict[str, Collective]:
    """`{kind: Collective(count, bytes)}` for every kind in `KINDS` (zeros included)."""
    lines = hlo_text.splitlines()
    types = {}
    for line in lines:
        m = INSTRUCTION.match(line)
        if m:
            types[m.group("name")] = shape_bytes(m.group("type"))
    out = {k: Collective() for k in KINDS}
    for kind, m in _collective_instructions(lines):
        result = types[m.group("name")]
        inputs = sum(types.get(o, 0) for o in _operands(m.group("rest")))
        if m.group("op").endswith("-start"):  # its type holds the operands and the results
            result = max(result - inputs, 0)
        out[kind].count += 1
        out[kind].bytes += max(result, inputs)
    return out


_OP_NAME = re.compile(r'op_name="([^"]*)"')


def op_names(hlo_text: str, kind: str) -> list[str]:
    """The source op name (`metadata={op_name=...}`: the jaxpr path, e.g.
    `jit(train_step)/jvp(IENet)/rgb/stage_0/block_0/attn/qkv/reshape`) of each collective
    of `kind` in the module, "" where it has none: which layer a collective comes from."""
    out = []
    for found, m in _collective_instructions(hlo_text.splitlines()):
        if found == kind:
            name = _OP_NAME.search(m.group("rest"))
            out.append(name.group(1) if name else "")
    return out


def wire_bytes(found: dict[str, Collective]) -> float:
    """Bytes each device sends for `found`'s collectives (ring estimate, `WIRE_FACTOR`)."""
    return sum(WIRE_FACTOR[k] * c.bytes for k, c in found.items())


_WHILE = re.compile(r"^\s*(?:ROOT\s+)?%[\w.\-]+\s*=.*\swhile\(", re.MULTILINE)


def while_loops(hlo_text: str) -> int:
    """Number of `while` instructions in the module. XLA's cost analysis counts a loop body
    once, whatever its trip count: XLA:TPU turns an FSDP gather of conv kernels over 16
    devices into such loops (a ring of collective-permutes, each step convolving one kernel
    piece), so the compiled step's FLOPs then fall short."""
    return len(_WHILE.findall(hlo_text))
