"""fragile: fragile/null kernel analysis, FGSM targeting and conv1 hardening (Pravin et al.)."""

__version__ = "0.1.0"
