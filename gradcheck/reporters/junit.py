"""JUnit XML report: one testcase per layer, readable by CI systems."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from gradcheck.results import RunResult, Status, describe_failure


def render_junit(run: RunResult, strict: bool = False) -> str:
    """The run as a JUnit <testsuites> document."""
    counts = run.counts()
    failures = counts["FAIL"] + (counts["WARN"] + counts["XPASS"] if strict else 0)
    suites = ET.Element("testsuites", name="gradcheck", tests=str(len(run.layers)),
                        failures=str(failures), errors=str(counts["ERROR"]), time=f"{run.seconds:.3f}")
    suite = ET.SubElement(
        suites, "testsuite", name="gradcheck", tests=str(len(run.layers)), failures=str(failures),
        errors=str(counts["ERROR"]), skipped=str(counts["SKIP"] + counts["XFAIL"]), time=f"{run.seconds:.3f}",
    )
    for layer in run.layers:
        case = ET.SubElement(suite, "testcase", classname="gradcheck", name=layer.name, time=f"{layer.seconds:.3f}")
        if layer.source:
            path, _, line = layer.source.rpartition(":")
            case.set("file", path)
            case.set("line", line)
        text = describe_failure(layer)
        if layer.status is Status.ERROR:
            ET.SubElement(case, "error", message=layer.message or "error", type="ERROR").text = text
        elif layer.status is Status.FAIL or (strict and layer.status in (Status.WARN, Status.XPASS)):
            ET.SubElement(case, "failure", message=layer.message or layer.status.value, type=layer.status.value).text = text
        elif layer.status in (Status.SKIP, Status.XFAIL):
            ET.SubElement(case, "skipped", message=layer.message or layer.status.value)
        elif layer.status in (Status.WARN, Status.XPASS):
            ET.SubElement(case, "system-out").text = text
    ET.indent(suites)
    return ET.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"
