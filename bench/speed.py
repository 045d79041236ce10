"""Where gradcheck still lagged torch: larger shapes, cost against size, and the red run.

Sections (all against torch.autograd.gradcheck in the same sitting, interleaved per repeat, medians):
  larger  every built-in with a torch equivalent at 2-3x the top of its layers.yaml range (max-pool
          also at a real network's 6x6x17x16 with overlapping and with plain windows): gradcheck
          fast and auto against torch fast, over several examples (different values each)
  sweep   seconds against elements checked for linear, conv2d, max-pool2d, lstm-cell and a two-layer
          model (examples/cs231n-two-layer-net, up to 10^5 parameters) at 4 sizes, gradcheck auto and
          fast next to torch fast
  red     the buggy gallery (examples/buggy/layers.yaml): `check_layer` per layer, mode auto (search,
          shrinking, evidence), next to torch slow mode's plain verdict on the same kind of layer
          (the torch twin of the built-in it is a bugged copy of, at that built-in's largest shapes)

Run from the repository root, with torch 2.13.0 installed (see bench/README.md):
    .venv/bin/python bench/speed.py --sections larger,sweep,red --repeats 3 --json bench/results/speed.json
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

# One BLAS thread, as torch gets below (like for like), and before numpy is first imported (it reads
# these once): on a shared 2-core machine a threaded 16x784 @ 784x128 costs ~20x the CPU of one thread.
for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_bench import ROOT, fmt_ratio, fmt_s, load_note, machine, median, registry_dims, table, torch_cases  # noqa: E402

from gradcheck.engine import Options, check_layer  # noqa: E402
from gradcheck.examples import Counter, check_example  # noqa: E402
from gradcheck.registry import load_registry  # noqa: E402
from gradcheck.sampling import Example, draw_arrays  # noqa: E402
from gradcheck.spec import DEFAULT_TOLERANCES  # noqa: E402

HYPER = {"K", "S", "P", "KH", "KW"}  # dims that are hyperparameters: kept at the registry's top
MAX_POOL_REAL = {"N": 6, "C": 6, "K": 3, "S": 2, "H": 17, "Wd": 16}
# (row label, layer, dims): 4 sizes each, elements checked growing about 4x a step
SWEEP = [
    *[
        (f"linear {n}x{d}->{m}", "linear", {"N": n, "D": d, "M": m})
        for n, d, m in ((4, 16, 16), (8, 32, 32), (16, 64, 64), (32, 128, 64))
    ],
    *[
        (
            f"conv2d {n}x{c}x{h}x{h} F{f}",
            "conv2d",
            {"N": n, "C": c, "F": f, "KH": 3, "KW": 3, "S": 1, "P": 1, "H": h, "Wd": h},
        )
        for n, c, f, h in ((2, 2, 4, 6), (4, 4, 8, 8), (4, 8, 8, 12), (8, 8, 16, 16))
    ],
    *[
        (f"max-pool2d {n}x{c}x{h}x{h} k3 s2", "max-pool2d", {"N": n, "C": c, "K": 3, "S": 2, "H": h, "Wd": h})
        for n, c, h in ((2, 2, 7), (4, 4, 9), (6, 6, 17), (6, 8, 21))
    ],
    *[
        (f"lstm-cell {n}x{d}->{h}", "lstm-cell", {"N": n, "D": d, "H": h})
        for n, d, h in ((4, 4, 4), (8, 8, 8), (16, 16, 16), (16, 32, 32))
    ],
    # a whole model (examples/cs231n-two-layer-net), up to MNIST size: 784-128-10, 10^5 parameters
    *[
        (f"two-layer-net {n}x{d}-{h}-{c}", "two-layer-net", {"N": n, "D": d, "H": h, "C": c})
        for n, d, h, c in ((4, 16, 16, 4), (8, 48, 32, 10), (16, 196, 64, 10), (16, 784, 128, 10))
    ],
]
MODELS = ROOT / "examples" / "cs231n-two-layer-net" / "layers.yaml"  # the sweep's whole model
# buggy gallery layer -> the built-in it is a bugged copy of (whose torch twin gives torch's verdict time)
RED_TWINS = {
    "transposed": "linear",
    "bias": "linear",
    "batch-mean": "linear",
    "sgd": "linear",
    "returns-none": "relu",
    "sigmoid": "tanh",
    "tanh": "tanh",
    "softmax-overflow": "softmax",
    "batchnorm": "batch-norm",
    "conv": "conv2d",
    "dropout": "relu",
    "mul": "relu",
    "leaky": "relu",
    "embedding": "linear",
    "lstm": "lstm-cell",
    "softmax-loss": "softmax-cross-entropy",
}


def larger_rows(specs: dict) -> list[tuple[str, str, dict]]:
    """(label, layer, dims) at 2-3x each registry range's top (size dims only), plus max-pool's real shapes."""
    rows = []
    for name, spec in specs.items():
        top = registry_dims(spec)
        if top is None:
            continue
        dims = {k: (v if k in HYPER else max(2 * v, 3 * v - 2)) for k, v in top.items()}
        rows.append((name, name, dims))
    rows.append(("max-pool2d 6x6x17x16 k3 s2", "max-pool2d", MAX_POOL_REAL))
    rows.append(("max-pool2d 6x6x17x16 k2 s2", "max-pool2d", {**MAX_POOL_REAL, "K": 2}))
    return rows


def compare_fast(torch, cases, spec, dims, seeds, repeats) -> dict:
    """torch fast, gradcheck fast and auto on the examples `seeds` (same values for both tools),
    interleaved example by example within each repeat; medians over repeats of each tool's total."""
    runs = []
    for seed in seeds:
        arrays = draw_arrays(spec, Example(tuple(dims.items()), seed, 1.0))
        function, tensors = cases[spec.name](arrays, dims)
        runs.append((seed, function, tensors))
    totals = {"torch fast": [], "fast": [], "auto": []}
    methods, verdicts = {}, set()
    for attempt in range(repeats + 1):  # the first round warms up and is not counted
        spent = dict.fromkeys(totals, 0.0)
        for seed, function, tensors in runs:
            gc.collect()  # another tool's garbage is collected outside the timings (12 ms stalls otherwise)
            start = time.perf_counter()
            verdicts.add(torch.autograd.gradcheck(function, tensors, fast_mode=True, raise_exception=False))
            spent["torch fast"] += time.perf_counter() - start
            for mode in ("fast", "auto"):
                gc.collect()
                start = time.perf_counter()
                outcome = check_example(
                    spec,
                    Example(tuple(dims.items()), seed, 1.0),
                    DEFAULT_TOLERANCES.merged(spec.tolerances),
                    Counter(),
                    mode,
                )
                spent[mode] += time.perf_counter() - start
                verdicts.add(outcome.status.value)
                for t in outcome.tensors:
                    methods.setdefault(mode, []).append(t.method)
        if attempt:
            for key, value in spent.items():
                totals[key].append(value)
    checked = {t.name for t in spec.differentiable_inputs} | {p.name for p in spec.params}
    elements = sum(a.size for n, a in draw_arrays(spec, Example(tuple(dims.items()), 1, 1.0)).items() if n in checked)
    per_round = {m: sorted(set(v)) for m, v in methods.items()}
    return {
        "layer": spec.name,
        "dims": dims,
        "elements": elements,
        "examples": len(seeds),
        **{k: median(v) for k, v in totals.items()},
        "times": totals,
        "methods": per_round,
        "verdicts": sorted(str(v) for v in verdicts),
    }


def fast_table(rows: list[dict], title: str) -> str:
    lines = [
        [
            r["label"],
            r["elements"],
            r["examples"],
            fmt_s(r["torch fast"]),
            fmt_s(r["fast"]),
            fmt_ratio(r["fast"] / r["torch fast"]),
            fmt_s(r["auto"]),
            fmt_ratio(r["auto"] / r["torch fast"]),
            "/".join(r["methods"].get("fast", [])),
            " ".join(r["verdicts"]),
        ]
        for r in rows
    ]
    total = [sum(r[k] for r in rows) for k in ("torch fast", "fast", "auto")]
    lines.append(
        [
            "**total**",
            "",
            "",
            fmt_s(total[0]),
            fmt_s(total[1]),
            fmt_ratio(total[1] / total[0]),
            fmt_s(total[2]),
            fmt_ratio(total[2] / total[0]),
            "",
            "",
        ]
    )
    headers = [
        "layer",
        "elements",
        "examples",
        "torch fast",
        "gradcheck fast",
        "fast/torch fast",
        "gradcheck auto",
        "auto/torch fast",
        "fast mode's methods",
        "verdicts",
    ]
    return table(headers, lines, title) + load_note()


def bench_fast_rows(torch, F, specs, rows, examples, repeats, seed, title) -> list[dict]:
    cases = torch_cases(torch, F)
    out = []
    for label, name, dims in rows:
        if name not in cases or name not in specs:
            continue
        row = compare_fast(torch, cases, specs[name], dims, range(seed, seed + examples), repeats)
        row["label"] = label
        out.append(row)
        print(
            f"  {label}: torch fast {fmt_s(row['torch fast'])}, fast {fmt_s(row['fast'])}, auto {fmt_s(row['auto'])}",
            file=sys.stderr,
            flush=True,
        )
    print(fast_table(out, title), flush=True)
    return out


def bench_red(torch, F, specs, repeats, seed) -> list[dict]:
    """The buggy gallery's red run against torch slow mode's verdict on each layer's twin."""
    cases = torch_cases(torch, F)
    gallery = load_registry(ROOT / "examples" / "buggy" / "layers.yaml").layers
    out = []
    for spec in gallery:
        twin = next((b for key, b in RED_TWINS.items() if spec.name.startswith(key)), None)
        if twin not in cases or twin not in specs:
            continue
        dims = registry_dims(specs[twin])
        arrays = draw_arrays(specs[twin], Example(tuple(dims.items()), seed, 1.0))
        function, tensors = cases[twin](arrays, dims)
        times = {"gradcheck": [], "torch slow": []}
        for attempt in range(repeats + 1):
            gc.collect()
            start = time.perf_counter()
            result = check_layer(spec, Options(seed=seed))
            ours = time.perf_counter() - start
            gc.collect()
            start = time.perf_counter()
            torch.autograd.gradcheck(function, tensors, fast_mode=False, raise_exception=False)
            if attempt:
                times["gradcheck"].append(ours)
                times["torch slow"].append(time.perf_counter() - start)
        out.append(
            {
                "layer": spec.name,
                "twin": twin,
                "status": result.status.value,
                "examples": result.examples,
                "forward": result.calls["forward"],
                "failing_dims": result.failing_dims,
                **{k: median(v) for k, v in times.items()},
                "times": times,
            }
        )
    lines = [
        [
            r["layer"],
            r["status"],
            r["examples"],
            r["forward"],
            fmt_s(r["gradcheck"]),
            r["twin"],
            fmt_s(r["torch slow"]),
            fmt_ratio(r["gradcheck"] / r["torch slow"]),
        ]
        for r in out
    ]
    total = [sum(r[k] for r in out) for k in ("gradcheck", "torch slow")]
    lines.append(["**total**", "", "", "", fmt_s(total[0]), "", fmt_s(total[1]), fmt_ratio(total[0] / total[1])])
    print(
        table(
            [
                "layer",
                "verdict",
                "examples",
                "forwards",
                "gradcheck (auto, whole layer)",
                "torch twin",
                "torch slow (one check)",
                "ratio",
            ],
            lines,
            f"The red run: buggy gallery, medians of {repeats}, interleaved",
        )
        + load_note(),
        flush=True,
    )
    return out


@contextlib.contextmanager
def phase_meter():
    """CPU seconds (process time: the machine is shared) and forwards spent in each phase of `check_layer`,
    and per tensor and method inside each example, got by wrapping the engine's own functions (what they
    do and return is untouched).

    Keys: "sample" (the numpy-drawn examples), "shrink" (the dims descent after a failure), "search"
    (hypothesis, only where `where` defeats the sampler: its search, then its shrink),
    "evidence" (the runs around the smallest failure); "directions" (the shared random directions of
    every tensor they start with), "NAME groups" (a huge tensor's own directions per group, its
    per-element checks of doubted groups included), "NAME full" (per-element check and confirmation).
    Times are inclusive: "NAME full" inside "NAME groups" counts in both, the per-tensor keys in a phase.
    """
    from gradcheck import by_directions, comparison, engine

    spent: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
    patched = []

    def meter(owner, attr, key, counter):
        original = getattr(owner, attr)

        def timed(*args, **kwargs):
            count, start = counter(args), time.process_time()
            before = count.forward
            try:
                return original(*args, **kwargs)
            finally:
                entry = spent[key(args)]
                entry[0] += time.process_time() - start
                entry[1] += count.forward - before

        setattr(owner, attr, timed)
        patched.append((owner, attr, original))

    meter(engine._Search, "_sample", lambda a: "sample", lambda a: a[0].counter)
    meter(engine._Search, "_descend", lambda a: "shrink", lambda a: a[0].counter)
    meter(engine._Search, "_search", lambda a: "search", lambda a: a[0].counter)
    meter(engine, "_gather_evidence", lambda a: "evidence", lambda a: a[3])
    meter(by_directions, "fast_pass", lambda a: "directions", lambda a: a[0].forwards.counter)
    meter(by_directions, "by_groups", lambda a: f"{a[1]} groups", lambda a: a[0].forwards.counter)
    meter(comparison.Comparison, "element_by_element", lambda a: f"{a[1]} full", lambda a: a[0].forwards.counter)
    meter(comparison.Comparison, "in_groups", lambda a: f"{a[1]} full", lambda a: a[0].forwards.counter)
    try:
        yield spent
    finally:
        for owner, attr, original in reversed(patched):
            setattr(owner, attr, original)


def bench_phases(configs: list[Path], examples: int | None, seed: int) -> list[dict]:
    """Per layer of each config: `check_layer` (mode auto) once, its time and forwards by phase."""
    out = []
    for config in configs:
        for spec in load_registry(config).layers:
            with phase_meter() as spent:
                start = time.process_time()
                result = check_layer(spec, Options(seed=seed, examples=examples))
                seconds = time.process_time() - start
            phases = {k: {"seconds": v[0], "forward": v[1]} for k, v in spent.items()}
            out.append(
                {
                    "layer": spec.name,
                    "config": str(config.relative_to(ROOT)),
                    "status": result.status.value,
                    "examples": result.examples,
                    "seconds": seconds,
                    "forward": result.calls["forward"],
                    "phases": phases,
                }
            )
    keys = ["sample", "shrink", "search", "evidence"]
    lines = [
        [
            r["layer"],
            r["status"],
            r["examples"],
            r["forward"],
            fmt_s(r["seconds"]),
            *(
                f"{fmt_s(r['phases'].get(k, {}).get('seconds', 0.0))} / {r['phases'].get(k, {}).get('forward', 0)}"
                for k in keys
            ),
        ]
        for r in out
    ]
    totals = {k: [sum(r["phases"].get(k, {}).get(f, 0) for r in out) for f in ("seconds", "forward")] for k in keys}
    lines.append(
        [
            "**total**",
            "",
            "",
            sum(r["forward"] for r in out),
            fmt_s(sum(r["seconds"] for r in out)),
            *(f"{fmt_s(totals[k][0])} / {totals[k][1]}" for k in keys),
        ]
    )
    print(
        table(
            [
                "layer",
                "verdict",
                "examples",
                "forwards",
                "cpu seconds",
                "numpy sample (cpu s / fwd)",
                "dims descent",
                "hypothesis (strict where)",
                "evidence",
            ],
            lines,
            "Where check_layer's time goes, by phase (cpu seconds / forwards)",
        )
        + load_note(),
        flush=True,
    )
    inner = defaultdict(lambda: [0.0, 0])
    for r in out:
        for k, v in r["phases"].items():
            if k not in keys:
                inner[f"{r['layer']}: {k}"][0] += v["seconds"]
                inner[f"{r['layer']}: {k}"][1] += v["forward"]
    rows = [[k, fmt_s(v[0]), v[1]] for k, v in sorted(inner.items(), key=lambda kv: -kv[1][1])[:20]]
    print(
        table(
            ["layer: tensor / method (inclusive)", "cpu seconds", "forwards"],
            rows,
            "Inside the examples: the 20 largest by forwards",
        ),
        flush=True,
    )
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", default="larger,sweep,red")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--examples", type=int, default=5, help="examples per row in larger and sweep (default 5)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--layers", nargs="+", help="only these rows' layers (larger, sweep)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(1)  # see bench/README.md: one thread, as numpy uses on arrays this small
    specs = {s.name: s for s in load_registry(ROOT / "layers.yaml").layers}
    models = {s.name: s for s in load_registry(MODELS).layers}
    wanted = (lambda name: name in args.layers) if args.layers else (lambda name: True)
    info = machine()
    print("# gradcheck speed sections\n\n" + "\n".join(f"- {k}: {v}" for k, v in info.items()), flush=True)
    report = {"machine": info, "args": {k: str(v) for k, v in vars(args).items()}}
    sections = args.sections.split(",")
    if "larger" in sections:
        rows = [r for r in larger_rows(specs) if wanted(r[1])]
        report["larger"] = bench_fast_rows(
            torch,
            F,
            specs,
            rows,
            args.examples,
            args.repeats,
            args.seed,
            f"Larger shapes (2-3x the registry's): fast modes, {args.examples} "
            f"examples per row, medians of {args.repeats}",
        )
    if "sweep" in sections:
        rows = [r for r in SWEEP if wanted(r[1])]
        report["sweep"] = bench_fast_rows(
            torch,
            F,
            specs | models,
            rows,
            args.examples,
            args.repeats,
            args.seed,
            f"Seconds against elements checked ({args.examples} examples per row, medians of {args.repeats})",
        )
    if "red" in sections:
        report["red"] = bench_red(torch, F, specs, args.repeats, args.seed)
    if "phases" in sections:  # no torch: where gradcheck's own time goes on the red run and the big model
        configs = [ROOT / "examples" / "buggy" / "layers.yaml", ROOT / "tests" / "fixtures" / "big" / "layers.yaml"]
        report["phases"] = bench_phases([c for c in configs if wanted(c.parent.name)], None, args.seed)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1, default=str) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
