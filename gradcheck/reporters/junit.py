"""JUnit XML report: <testsuites><testsuite><testcase> with one testcase per layer, as CI systems read it."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from gradcheck.reporters.common import Locations, anchor, code_at, xml_text
from gradcheck.results import LayerResult, RunResult, Status


def verdict(layer: LayerResult, strict: bool = False) -> str | None:
    """The JUnit child element a layer gets: 'error', 'failure', 'skipped', or None for a pass."""
    if layer.status is Status.ERROR:
        return "error"
    if layer.status.is_failure(strict):
        return "failure"
    if layer.status is Status.XFAIL:
        return "skipped"
    return None


def render_junit(run: RunResult, strict: bool = False, locations: Locations | None = None) -> str:
    """The run as a JUnit document; failures carry the worst element and the reproduce command."""
    verdicts = [verdict(layer, strict) for layer in run.layers]
    totals = {
        "tests": str(len(run.layers)),
        "failures": str(verdicts.count("failure")),
        "errors": str(verdicts.count("error")),
        "skipped": str(verdicts.count("skipped")),
        "time": f"{run.seconds:.3f}",
    }
    suites = ET.Element("testsuites", {"name": "gradcheck", **{k: v for k, v in totals.items() if k != "skipped"}})
    suite = ET.SubElement(suites, "testsuite", {"name": "gradcheck", **totals})
    properties = ET.SubElement(suite, "properties")
    ET.SubElement(properties, "property", name="seed", value=str(run.seed))
    ET.SubElement(properties, "property", name="strict", value=str(strict).lower())
    for layer, kind in zip(run.layers, verdicts, strict=True):
        _testcase(suite, layer, kind, locations)
    ET.indent(suites)
    return ET.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"


def _testcase(suite: ET.Element, layer: LayerResult, kind: str | None, locations: Locations | None) -> None:
    case = ET.SubElement(
        suite, "testcase", classname="gradcheck", name=xml_text(layer.name), time=f"{layer.seconds:.3f}"
    )
    where = anchor(layer, locations)
    if where:
        case.set("file", xml_text(where[0]))
        case.set("line", str(where[1]))
    text = xml_text(_details(layer, locations))
    if kind == "skipped":
        ET.SubElement(case, "skipped", message=xml_text(f"{layer.status.value}: {layer.message or layer.xfail or ''}"))
    elif kind:
        element = ET.SubElement(case, kind, message=xml_text(layer.account.headline()), type=layer.status.value)
        element.text = text
    elif layer.status is not Status.PASS:  # WARN or XPASS without --strict: passed, with something to say
        ET.SubElement(case, "system-out").text = text


def _details(layer: LayerResult, locations: Locations | None) -> str:
    lines = [layer.account.text()]
    if code_at(layer, locations):
        lines.append(f"  code at {code_at(layer, locations)}")
    if layer.source:
        lines.append(f"  defined at {layer.source}")
    return "\n".join(lines)
