"""gradcheck: check hand-written numpy backward passes against centred finite differences."""

from gradcheck.api import check_layer, layer_names, run_config
from gradcheck.direct import CheckResult, check
from gradcheck.registry import load_registry
from gradcheck.results import LayerResult, RunResult, Status, TensorResult

__all__ = ["check", "CheckResult", "check_layer", "run_config", "layer_names", "load_registry", "LayerResult",
           "RunResult", "Status", "TensorResult"]
__version__ = "0.1.0"  # the one place the version is written: pyproject.toml reads it from here
