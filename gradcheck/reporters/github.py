"""GitHub Actions workflow commands: an annotation per layer that did not pass, at the code to fix."""

from __future__ import annotations

from gradcheck.reporters.common import Locations, anchor, printable_run, workspace
from gradcheck.results import RunResult, Status


def escape_data(text: str) -> str:
    """Escape a workflow command's message, so newlines survive."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """Escape a workflow command's property value (file, title)."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def annotation(level: str, message: str, title: str, where: tuple[str, int] | None = None) -> str:
    """One `::error file=F,line=L,title=T::message` line."""
    props = [f"file={escape_property(where[0])}", f"line={where[1]}"] if where else []
    props.append(f"title={escape_property(title)}")
    return f"::{level} {','.join(props)}::{escape_data(message)}"


def render_github(run: RunResult, strict: bool = False, locations: Locations | None = None) -> str:
    """Errors for failures, warnings for WARN/XPASS (errors under --strict), and a summary notice.

    Each points at the layer's code when it is in the repository, else at its layers.yaml entry.
    """
    lines, base, run = [], workspace(), printable_run(run)
    for layer in run.layers:
        if layer.status in (Status.PASS, Status.SKIP, Status.XFAIL):
            continue
        level = "error" if layer.status.is_failure(strict) else "warning"
        title = f"gradcheck {layer.name}: {layer.status.value}"
        lines.append(annotation(level, layer.account.text(), title, anchor(layer, locations, base)))
    counts = run.counts()
    summary = ", ".join(f"{n} {s.lower()}" for s, n in counts.items() if n) or "no layers checked"
    lines.append(f"::notice title=gradcheck::{escape_data(summary)} (seed {run.seed})")
    return "\n".join(lines) + "\n"
