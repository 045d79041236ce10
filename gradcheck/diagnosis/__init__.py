"""Diagnosis of a failing gradient: which extra examples to run, and how to read the numbers.

`evidence` decides what to run after a failure and which example to read; `patterns` names the
probable bug when the numbers fit one clearly.
"""

from gradcheck.diagnosis.evidence import Evidence, gather_evidence, hyperparameter_dims, larger_dims, probable_cause
from gradcheck.diagnosis.patterns import diagnose

# what the user's code did is not diagnosis; kept importable from here for the modules that import it so
from gradcheck.user_code import float_errors, nonfinite_cause, output_label, upstream_label, user_traceback

__all__ = [
    "Evidence",
    "gather_evidence",
    "hyperparameter_dims",
    "larger_dims",
    "probable_cause",
    "diagnose",
    "float_errors",
    "nonfinite_cause",
    "output_label",
    "upstream_label",
    "user_traceback",
]
