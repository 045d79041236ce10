"""Scale-out: --jobs survives hangs and crashes, --timeout with and without --jobs, --shard covers the registry."""

import json
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from gradcheck.cli import cli
from gradcheck.engine import Options
from gradcheck.parallel import run_layers
from gradcheck.registry import load_registry
from gradcheck.results import Status
from gradcheck.sharding import parse_shard, select_shard

FIXTURES = Path(__file__).parent / "fixtures" / "cli"


def run_json(*args):
    result = CliRunner(env={"FORCE_COLOR": None}).invoke(
        cli, ["run", *map(str, args), "--format", "json"], catch_exceptions=False
    )
    return result.exit_code, json.loads(result.stdout)


def by_name(document):
    return {layer["name"]: layer for layer in document["layers"]}


# -- hangs and crashes ------------------------------------------------------------------------
def test_jobs_survive_a_hang_an_exit_and_a_kill():
    started = time.perf_counter()
    code, document = run_json("all", "--config", FIXTURES / "unruly.yaml", "--seed", 7, "--jobs", 2, "--timeout", 2)
    assert time.perf_counter() - started < 30
    assert code == 1
    assert [layer["name"] for layer in document["layers"]] == ["square", "hang", "exits", "killed", "affine"]
    layers = by_name(document)
    assert layers["square"]["status"] == layers["affine"]["status"] == "PASS"
    assert layers["hang"]["status"] == "ERROR" and "timed out after 2 s" in layers["hang"]["message"]
    assert layers["hang"]["repro"].endswith("--timeout 2")
    assert layers["exits"]["status"] == "ERROR" and "exited with code 1" in layers["exits"]["message"]
    assert layers["killed"]["status"] == "ERROR" and "SIGKILL" in layers["killed"]["message"]


def test_timeout_without_jobs_turns_a_hang_into_an_error():
    code, document = run_json("all", "--config", FIXTURES / "hang.yaml", "--seed", 7, "--timeout", 1.5, "--examples", 3)
    layers = by_name(document)
    assert code == 1
    assert layers["hang"]["status"] == "ERROR" and "timed out after 1.5 s" in layers["hang"]["message"]
    assert layers["square"]["status"] == "PASS"


def test_a_hang_marked_xfail_is_an_expected_failure(tmp_path):
    text = (
        (FIXTURES / "hang.yaml")
        .read_text()
        .replace("dims: {N: [1, 3], D: [1, 3]}\n", "dims: {N: [1, 3], D: [1, 3]}\n    xfail: hangs\n", 1)
    )
    (tmp_path / "hang.yaml").write_text(text.replace("cli_layers.py", str(FIXTURES / "cli_layers.py")))
    code, document = run_json("hang", "--config", tmp_path / "hang.yaml", "--seed", 7, "--timeout", 0.5)
    assert code == 0 and document["layers"][0]["status"] == "XFAIL"


def test_workers_give_the_same_verdicts_as_one_process():
    args = ("all", "--config", FIXTURES / "failing.yaml", "--seed", 7, "--examples", 3)
    _, alone = run_json(*args)
    _, pooled = run_json(*args, "--jobs", 2)
    strip = lambda doc: [{k: v for k, v in layer.items() if k != "seconds"} for layer in doc["layers"]]  # noqa: E731
    assert strip(pooled) == strip(alone)


def test_fail_fast_with_jobs_stops_launching_layers():
    specs = load_registry(FIXTURES / "failing.yaml").layers[::-1]  # the failing one first
    result = run_layers(specs, Options(seed=7, examples=3, fail_fast=True), jobs=1)
    assert [layer.status for layer in result.layers] == [Status.FAIL]
    pooled = run_layers(specs * 2, Options(seed=7, examples=3, fail_fast=True), jobs=2)
    assert Status.FAIL in [layer.status for layer in pooled.layers] and len(pooled.layers) < 4


def test_progress_and_results_are_reported_from_workers():
    seen, done = [], []
    specs = load_registry(FIXTURES / "layers.yaml").layers
    run_layers(specs, Options(seed=7, examples=3), jobs=2, progress=lambda *a: seen.append(a), on_result=done.append)
    assert {name for name, _, _, _ in seen} == {spec.name for spec in specs}
    assert sorted(r.name for r in done) == sorted(spec.name for spec in specs)


# -- sharding ---------------------------------------------------------------------------------
LAYER_NAMES = st.text(alphabet="abcdefghij-_0123456789", min_size=1, max_size=10)


@given(names=st.lists(LAYER_NAMES, unique=True, max_size=30), count=st.integers(1, 9))
def test_shards_are_disjoint_cover_the_registry_and_balance(names, count):
    shards = [select_shard(names, k, count) for k in range(1, count + 1)]
    flat = [name for shard in shards for name in shard]
    assert sorted(flat) == sorted(names)  # every layer exactly once
    for shard in shards:
        assert shard == [name for name in names if name in shard]  # registry order kept
    sizes = [len(shard) for shard in shards]
    assert max(sizes) - min(sizes) <= 1
    assert select_shard(names, 1, count) == select_shard(list(names), 1, count)  # deterministic


@pytest.mark.parametrize("text, expected", [("1/1", (1, 1)), ("3/4", (3, 4)), (" 2/ 5", (2, 5))])
def test_parse_shard(text, expected):
    assert parse_shard(text) == expected


@pytest.mark.parametrize("text", ["0/2", "3/2", "1/0", "1", "a/b", "-1/2", "1/2/3", ""])
def test_parse_shard_rejects(text):
    with pytest.raises(ValueError, match="expected"):
        parse_shard(text)


def test_cli_shards_cover_the_config():
    config = FIXTURES / "unruly.yaml"
    seen = []
    for k in (1, 2, 3):
        _, document = run_json("square", "affine", "--config", config, "--seed", 7, "--shard", f"{k}/3")
        seen += [layer["name"] for layer in document["layers"]]
    assert sorted(seen) == ["affine", "square"]
