#!/usr/bin/env python
"""Compare two gradcheck engines layer by layer, alternating them, so that drift of the machine
hits both alike (a whole run of one engine, then of the other, can differ by 30% on its own here).

    mkdir /tmp/old && git archive OLD | tar -x -C /tmp/old
    python bench/interleave.py /tmp/old . --layers linear conv2d --modes default,fast

For each layer and each of `--rounds` rounds, `run_bench.py --sections SECTION --layers LAYER`
runs once per engine (its own interpreter, PYTHONPATH at the engine's checkout, this checkout's
run_bench.py); the table gives the medians over the rounds of run_bench's own medians.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_bench import LARGE_DIMS, MEDIUM_DIMS, fmt_pct, fmt_ratio, fmt_s, load_note, table  # noqa: E402

BENCH = Path(__file__).resolve()


HEADERS = [
    "mode",
    "layer",
    "forward (old)",
    "forward (new)",
    "wall (old)",
    "wall (new)",
    "new/old",
    "in layer code (old)",
    "in layer code (new)",
]
SIDES = ("old", "new")
Runs = dict[tuple[str, str, str], list[dict]]  # (mode, layer, side) -> run_bench rows, one per round


def measure(root: Path, section: str, layer: str, modes: str, repeats: int) -> dict:
    """One run of run_bench.py on the engine at `root`: {mode: the layer's row}."""
    command = [str(BENCH.with_name("run_bench.py")), "--sections", section, "--layers", layer]
    command += ["--modes", modes, "--repeats", str(repeats)]
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "out.json"
        subprocess.run(
            [sys.executable, *command, "--json", str(out)],
            cwd=root,
            env={**os.environ, "PYTHONPATH": str(root)},
            capture_output=True,
            check=True,
        )
        return {mode: rows[0] for mode, rows in json.loads(out.read_text())[section].items() if rows}


def _forwards(row: dict):
    """Forward calls of a run_bench row (the large section's "forward", the medium section's "calls")."""
    return row.get("forward", row.get("calls", {}).get("forward", "-"))


def alternate(args: argparse.Namespace, layers: list[str]) -> Runs:
    """Every layer, `args.rounds` times, the old engine then the new one."""
    runs: Runs = {}
    for layer in layers:
        for _ in range(args.rounds):
            for side, root in zip(SIDES, (args.old, args.new), strict=True):
                for mode, row in measure(root.resolve(), args.section, layer, args.modes, args.repeats).items():
                    runs.setdefault((mode, layer, side), []).append(row)
    return runs


def mode_rows(runs: Runs, mode: str, layers: list[str]) -> list[list]:
    """One table row per layer measured on both sides in `mode`, then their total."""
    rows = []
    total = dict.fromkeys(SIDES, 0.0)
    for layer in layers:
        got = {side: runs.get((mode, layer, side)) for side in SIDES}
        if not got["old"] or not got["new"]:
            continue
        wall = {side: statistics.median(r["wall"] for r in got[side]) for side in SIDES}
        share = {side: statistics.median(r["layer_share"] for r in got[side]) for side in SIDES}
        total = {side: total[side] + wall[side] for side in SIDES}
        forwards = [_forwards(got[side][0]) for side in SIDES]
        walls = [fmt_s(wall["old"]), fmt_s(wall["new"]), fmt_ratio(wall["new"] / wall["old"])]
        rows.append([mode, layer, *forwards, *walls, fmt_pct(share["old"]), fmt_pct(share["new"])])
    ratio = fmt_ratio(total["new"] / total["old"]) if total["old"] else "-"
    rows.append([mode, "TOTAL", "", "", fmt_s(total["old"]), fmt_s(total["new"]), ratio, "", ""])
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Two engines, alternated layer by layer.")
    parser.add_argument("old", type=Path, help="Checkout of the earlier engine.")
    parser.add_argument("new", type=Path, help="Checkout of the later engine.")
    parser.add_argument("--section", choices=("large", "medium"), default="large")
    parser.add_argument("--layers", nargs="+", help="Layers (default: every layer of the section's shapes).")
    parser.add_argument(
        "--modes", default="default,fast", help="Modes, as run_bench.py takes them (default: %(default)s)."
    )
    parser.add_argument("--rounds", type=int, default=3, help="Alternations per layer (default: %(default)s).")
    parser.add_argument("--repeats", type=int, default=3, help="run_bench.py's --repeats (default: %(default)s).")
    args = parser.parse_args(argv)
    layers = args.layers or list(LARGE_DIMS if args.section == "large" else MEDIUM_DIMS)
    runs = alternate(args, layers)
    rows = [row for mode in dict.fromkeys(mode for mode, _, _ in runs) for row in mode_rows(runs, mode, layers)]
    title = (
        f"{args.old} (old) against {args.new} (new), {args.section} shapes, alternated layer by layer "
        f"({args.rounds} rounds, medians)"
    )
    print(table(HEADERS, rows, title) + load_note())
    return 0


if __name__ == "__main__":
    sys.exit(main())
