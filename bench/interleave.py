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


def measure(root: Path, section: str, layer: str, modes: str, repeats: int) -> dict:
    """One run of run_bench.py on the engine at `root`: {mode: the layer's row}."""
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "out.json"
        subprocess.run([sys.executable, str(BENCH.with_name("run_bench.py")), "--sections", section, "--layers", layer,
                        "--modes", modes, "--repeats", str(repeats), "--json", str(out)],
                       cwd=root, env={**os.environ, "PYTHONPATH": str(root)}, capture_output=True, check=True)
        return {mode: rows[0] for mode, rows in json.loads(out.read_text())[section].items() if rows}


def _forwards(row: dict):
    """Forward calls of a run_bench row (the large section's "forward", the medium section's "calls")."""
    return row.get("forward", row.get("calls", {}).get("forward", "-"))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Two engines, alternated layer by layer.")
    parser.add_argument("old", type=Path, help="Checkout of the earlier engine.")
    parser.add_argument("new", type=Path, help="Checkout of the later engine.")
    parser.add_argument("--section", choices=("large", "medium"), default="large")
    parser.add_argument("--layers", nargs="+", help="Layers (default: every layer of the section's shapes).")
    parser.add_argument("--modes", default="default,fast", help="Modes, as run_bench.py takes them (default: %(default)s).")
    parser.add_argument("--rounds", type=int, default=3, help="Alternations per layer (default: %(default)s).")
    parser.add_argument("--repeats", type=int, default=3, help="run_bench.py's --repeats (default: %(default)s).")
    args = parser.parse_args(argv)
    layers = args.layers or list(LARGE_DIMS if args.section == "large" else MEDIUM_DIMS)
    runs: dict[tuple[str, str, str], list[dict]] = {}
    for layer in layers:
        for _ in range(args.rounds):
            for side, root in (("old", args.old), ("new", args.new)):
                for mode, row in measure(root.resolve(), args.section, layer, args.modes, args.repeats).items():
                    runs.setdefault((mode, layer, side), []).append(row)
    modes = list(dict.fromkeys(mode for mode, _, _ in runs))
    rows = []
    for mode in modes:
        total = {"old": 0.0, "new": 0.0}
        for layer in layers:
            old, new = runs.get((mode, layer, "old")), runs.get((mode, layer, "new"))
            if not old or not new:
                continue
            wall = {side: statistics.median(r["wall"] for r in got) for side, got in (("old", old), ("new", new))}
            share = {side: statistics.median(r["layer_share"] for r in got) for side, got in (("old", old), ("new", new))}
            total = {side: total[side] + wall[side] for side in total}
            rows.append([mode, layer, _forwards(old[0]), _forwards(new[0]), fmt_s(wall["old"]), fmt_s(wall["new"]),
                         fmt_ratio(wall["new"] / wall["old"]), fmt_pct(share["old"]), fmt_pct(share["new"])])
        rows.append([mode, "TOTAL", "", "", fmt_s(total["old"]), fmt_s(total["new"]),
                     fmt_ratio(total["new"] / total["old"]) if total["old"] else "-", "", ""])
    print(table(["mode", "layer", "forward (old)", "forward (new)", "wall (old)", "wall (new)", "new/old",
                 "in layer code (old)", "in layer code (new)"], rows,
                f"{args.old} (old) against {args.new} (new), {args.section} shapes, alternated layer by layer "
                f"({args.rounds} rounds, medians)") + load_note())
    return 0


if __name__ == "__main__":
    sys.exit(main())
