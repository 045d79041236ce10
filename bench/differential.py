"""Record, and compare, every verdict the engine gives: the safety net for refactoring the engine.

`record` checks every layer of every layers.yaml under examples/ and tests/fixtures/ plus the
built-ins, in the modes and at the seeds asked, and writes what decides a verdict — statuses,
failing tensors, worst indices, call counts — as JSON. `compare` lists every difference between
two such files. Times are left out: they differ on every run.

    python bench/differential.py record base.json
    python bench/differential.py record after.json && python bench/differential.py compare base.json after.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 120.0  # per layer: the hang fixtures end as ERROR without stalling the run


def configs() -> list[Path]:
    """Every layers.yaml the differential covers, in a fixed order."""
    found = sorted((ROOT / "examples").rglob("*.yaml")) + sorted((ROOT / "tests" / "fixtures").rglob("*.yaml"))
    return [ROOT / "layers.yaml", *found]


def record(modes: list[str], seeds: list[int], jobs: int) -> dict:
    """Verdicts of every layer of every config, keyed by 'config::layer::mode::seed'."""
    from gradcheck.engine import Options
    from gradcheck.parallel import run_layers
    from gradcheck.registry import load_registry

    out: dict[str, dict] = {}
    for config in configs():
        try:
            specs = list(load_registry(config).layers)
        except Exception as exc:  # a fixture that is meant not to load: record that it does not
            out[f"{config.relative_to(ROOT)}"] = {"load_error": type(exc).__name__}
            continue
        for mode in modes:
            for seed in seeds:
                run = run_layers(specs, Options(seed=seed, mode=mode, timeout=TIMEOUT), jobs=jobs)
                for layer in run.layers:
                    out[f"{config.relative_to(ROOT)}::{layer.name}::{mode}::{seed}"] = verdict(layer)
        print(f"recorded {config.relative_to(ROOT)}", file=sys.stderr)
    return out


def verdict(layer) -> dict:
    """What decides a layer's verdict, without times."""
    return {
        "status": layer.status.value,
        "examples": layer.examples,
        "calls": dict(layer.calls),
        "failing_dims": layer.failing_dims,
        "tensors": {
            t.name: {
                "status": t.status.value,
                "worst_index": list(t.worst_index) if t.worst_index else None,
                "failing_dims": t.failing_dims,
            }
            for t in layer.tensors
        },
    }


def compare(before: dict, after: dict) -> list[str]:
    """One line per key whose verdict differs, or that only one side has."""
    lines = []
    for key in sorted(set(before) | set(after)):
        a, b = before.get(key), after.get(key)
        if a != b:
            lines.append(f"{key}: {json.dumps(a, sort_keys=True)} -> {json.dumps(b, sort_keys=True)}")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    rec = sub.add_parser("record", help="check everything and write the verdicts as JSON")
    rec.add_argument("output", type=Path)
    rec.add_argument("--modes", default="auto,fast,full")
    rec.add_argument("--seeds", default="1,2")
    rec.add_argument("--jobs", type=int, default=2)
    cmp = sub.add_parser("compare", help="list the differences between two recordings")
    cmp.add_argument("before", type=Path)
    cmp.add_argument("after", type=Path)
    args = parser.parse_args()
    if args.command == "record":
        seeds = [int(s) for s in args.seeds.split(",")]
        data = record(args.modes.split(","), seeds, args.jobs)
        args.output.write_text(json.dumps(data, indent=1, sort_keys=True))
        return 0
    lines = compare(json.loads(args.before.read_text()), json.loads(args.after.read_text()))
    print("\n".join(lines) or "no differences")
    print(f"{len(lines)} difference(s)", file=sys.stderr)
    return int(bool(lines))


if __name__ == "__main__":
    sys.exit(main())
