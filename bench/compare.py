#!/usr/bin/env python
"""Compare two `run_bench.py --json` results (e.g. before and after an optimisation), as markdown tables.

    python bench/compare.py bench/results/now-aeea93e.json after.json

Each side uses its own first mode present ("default", else "full") unless --mode names one.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_bench import fmt_pct, fmt_ratio, fmt_s, table  # noqa: E402


def pick(section: dict, mode: str | None) -> tuple[str, list]:
    """The rows of one mode of a per-mode section: the named mode, else default, else full."""
    for key in ([mode] if mode else []) + ["default", "full"] + list(section):
        if key in section:
            return key, section[key]
    return "", []


def ratio(new, old):
    return new / old if new is not None and old else None


def layers_table(old: dict, new: dict, mode: str | None) -> str:
    om, orows = pick(old.get("layers", {}), mode)
    nm, nrows = pick(new.get("layers", {}), mode)
    before = {r["name"]: r for r in orows}
    rows = []
    for r in nrows:
        o = before.get(r["name"], {})
        rows.append(
            [
                r["name"],
                o.get("calls", {}).get("forward", "-"),
                r["calls"]["forward"],
                fmt_s(o.get("wall")),
                fmt_s(r["wall"]),
                fmt_ratio(ratio(r["wall"], o.get("wall"))),
                fmt_s(o.get("cpu")),
                fmt_s(r["cpu"]),
                fmt_pct(o.get("overhead_share")),
                fmt_pct(r["overhead_share"]),
            ]
        )
    headers = [
        "layer",
        "forward calls (old)",
        "forward calls (new)",
        "wall (old)",
        "wall (new)",
        "new/old",
        "cpu (old)",
        "cpu (new)",
        "checker share (old)",
        "checker share (new)",
    ]
    return table(headers, rows, f"Per layer: old mode={om}, new mode={nm} (medians)")


def run_all_table(old: dict, new: dict) -> str:
    rows = []
    for key in new.get("run_all", {}):
        o, n = old.get("run_all", {}).get(key, {}), new["run_all"][key]
        rows.append(
            [
                key,
                fmt_s(o.get("median")),
                fmt_s(n["median"]),
                fmt_ratio(ratio(n["median"], o.get("median"))),
                fmt_s(o.get("cpu")),
                fmt_s(n.get("cpu")),
            ]
        )
    return table(
        ["command", "wall (old)", "wall (new)", "new/old", "cpu (old)", "cpu (new)"],
        rows,
        "gradcheck run all, end to end (medians)",
    )


def scaling_table(old: dict, new: dict, mode: str | None) -> str:
    om, orows = pick(old.get("scaling", {}), mode)
    nm, nrows = pick(new.get("scaling", {}), mode)
    before = {r["name"]: r for r in orows}
    rows = []
    for r in nrows:
        o = before.get(r["name"])
        cells = [r["name"]]
        for side in (o, r):
            if side is None:
                cells += ["-", "-"]
                continue
            cells += [
                fmt_ratio(ratio(side["2B"]["input_forwards"], side["B"]["input_forwards"])),
                fmt_ratio(ratio(side["2B"]["input_span"], side["B"]["input_span"])),
            ]
        rows.append(cells)
    headers = [
        "layer",
        "input forwards 2B/B (old)",
        "input check time 2B/B (old)",
        "input forwards 2B/B (new)",
        "input check time 2B/B (new)",
    ]
    return table(headers, rows, f"Batch scaling: old mode={om}, new mode={nm}")


def torch_table(old: dict, new: dict) -> str:
    before = {(r["name"], r["shapes"]): r for r in old.get("torch", {}).get("rows", [])}
    rows = []
    for r in new.get("torch", {}).get("rows", []):
        o = before.get((r["name"], r["shapes"]), {})
        og, ng = o.get("gradcheck", {}), r["gradcheck"]
        old_full = og.get("full", og.get("default"))
        new_full = ng.get("full", ng.get("default"))
        rows.append(
            [
                r["name"],
                r["shapes"],
                fmt_ratio(ratio(old_full, o.get("torch_slow"))),
                fmt_ratio(ratio(new_full, r["torch_slow"])),
                fmt_ratio(ratio(og.get("fast"), o.get("torch_fast"))),
                fmt_ratio(ratio(ng.get("fast"), r["torch_fast"])),
            ]
        )
    headers = [
        "layer",
        "shapes",
        "full / torch slow (old)",
        "full / torch slow (new)",
        "fast / torch fast (old)",
        "fast / torch fast (new)",
    ]
    return table(headers, rows, "gradcheck time / torch.autograd.gradcheck time (lower is better, target <= 1)")


def fixed_table(old: dict, new: dict, section: str) -> str:
    """medium or large: one fixed example per layer, per mode: wall time and the layer's share."""
    rows = []
    for mode, nrows in new.get(section, {}).items():
        before = {r["name"]: r for r in old.get(section, {}).get(mode, [])}
        for r in nrows + [_total(nrows)]:
            o = before.get(r["name"]) or (_total(list(before.values())) if r["name"] == "TOTAL" else {})
            rows.append(
                [
                    mode,
                    r["name"],
                    fmt_s(o.get("wall")),
                    fmt_s(r["wall"]),
                    fmt_ratio(ratio(r["wall"], o.get("wall"))),
                    fmt_pct(o.get("layer_share")),
                    fmt_pct(r["layer_share"]),
                ]
            )
    return table(
        ["mode", "layer", "wall (old)", "wall (new)", "new/old", "in layer code (old)", "in layer code (new)"],
        rows,
        f"One example per layer, {section} shapes",
    )


def _total(rows: list) -> dict:
    wall = sum(r["wall"] for r in rows)
    return {
        "name": "TOTAL",
        "wall": wall,
        "layer_share": sum(r["wall"] * r["layer_share"] for r in rows) / wall if wall else None,
    }


def floor_table(old: dict, new: dict) -> str:
    rows = []
    for mode, n in new.get("floor", {}).items():
        o = old.get("floor", {}).get(mode, {}).get("fit", {})
        if "fit" not in n:  # no line to fit: the same forwards at every size (fast mode)
            continue
        rows.append(
            [
                mode,
                fmt_s(o.get("per_example")),
                fmt_s(n["fit"]["per_example"]),
                fmt_s(o.get("per_forward")),
                fmt_s(n["fit"]["per_forward"]),
            ]
        )
    return table(
        ["mode", "per example (old)", "per example (new)", "per forward (old)", "per forward (new)"],
        rows,
        "The checker's own cost (floor section)",
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Compare two run_bench.py --json files as markdown tables.")
    parser.add_argument("old", type=Path, help="The earlier results (JSON from run_bench.py --json).")
    parser.add_argument("new", type=Path, help="The later results.")
    parser.add_argument(
        "--mode", help="Mode to compare in the per-layer and scaling tables (default: default, else full)."
    )
    args = parser.parse_args(argv)
    old, new = (json.loads(p.read_text(encoding="utf-8")) for p in (args.old, args.new))
    print(f"old: {old['machine'].get('label', args.old)}\nnew: {new['machine'].get('label', args.new)}")
    for section, render in (
        ("layers", lambda: layers_table(old, new, args.mode)),
        ("run_all", lambda: run_all_table(old, new)),
        ("scaling", lambda: scaling_table(old, new, args.mode)),
        ("torch", lambda: torch_table(old, new)),
        ("medium", lambda: fixed_table(old, new, "medium")),
        ("large", lambda: fixed_table(old, new, "large")),
        ("floor", lambda: floor_table(old, new)),
    ):
        if section in new:
            print(render())
    return 0


if __name__ == "__main__":
    sys.exit(main())
