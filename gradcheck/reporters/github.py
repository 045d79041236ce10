"""GitHub Actions workflow annotations: one ::error or ::warning line per layer that did not pass."""

from __future__ import annotations

from gradcheck.results import RunResult, Status, describe_failure


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def render_github(run: RunResult, strict: bool = False) -> str:
    """Annotation commands pointing at each failing layer's entry in layers.yaml."""
    lines = []
    for layer in run.layers:
        if layer.status in (Status.PASS, Status.SKIP, Status.XFAIL):
            continue
        failing = layer.status.is_failure(strict)
        level = "error" if failing else "warning"
        props = []
        if layer.source:
            path, _, line = layer.source.rpartition(":")
            props += [f"file={_escape_property(path)}", f"line={line}"]
        props.append(f"title={_escape_property(f'gradcheck {layer.name}: {layer.status.value}')}")
        lines.append(f"::{level} {','.join(props)}::{_escape_data(describe_failure(layer))}")
    counts = run.counts()
    lines.append(f"::notice title=gradcheck::{counts['PASS']} passed, {counts['FAIL']} failed, {counts['ERROR']} errors")
    return "\n".join(lines) + "\n"
