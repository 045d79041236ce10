"""JSON report: one document with every layer, tensor and the summary."""

from __future__ import annotations

import json
import math

from gradcheck.results import LayerResult, RunResult, TensorResult

SCHEMA_VERSION = 1


def _number(value):
    """JSON has no inf/nan: map them to strings so the document stays valid."""
    if value is None or not isinstance(value, float) or math.isfinite(value):
        return value
    return str(value)


def tensor_dict(tensor: TensorResult) -> dict:
    return {
        "name": tensor.name,
        "kind": tensor.kind,
        "shape": list(tensor.shape),
        "status": tensor.status.value,
        "max_abs_error": _number(tensor.max_abs_error),
        "max_rel_error": _number(tensor.max_rel_error),
        "worst_index": list(tensor.worst_index) if tensor.worst_index is not None else None,
        "analytic": _number(tensor.analytic),
        "numeric": _number(tensor.numeric),
        "diagnosis": tensor.diagnosis or None,
        "message": tensor.message or None,
    }


def layer_dict(layer: LayerResult) -> dict:
    return {
        "name": layer.name,
        "status": layer.status.value,
        "message": layer.message,
        "tensors": [tensor_dict(t) for t in layer.tensors],
        "examples": layer.examples,
        "seconds": round(layer.seconds, 4),
        "seed": layer.seed,
        "failing_dims": layer.failing_dims,
        "warnings": list(layer.warnings),
        "kinks_skipped": layer.kinks,
        "calls": layer.calls,
        "repro": layer.repro or None,
        "source": layer.source or None,
        "impl": layer.impl,
        "style": layer.style,
        "xfail": layer.xfail,
    }


def render_json(run: RunResult, strict: bool = False) -> str:
    """The whole run as one JSON document (schema in the README)."""
    document = {
        "schema_version": SCHEMA_VERSION,
        "layers": [layer_dict(layer) for layer in run.layers],
        "summary": {
            **{k.lower(): v for k, v in run.counts().items()},
            "total": len(run.layers),
            "seconds": round(run.seconds, 4),
            "seed": run.seed,
            "strict": strict,
            "exit_code": run.exit_code(strict),
        },
    }
    return json.dumps(document, indent=2)
