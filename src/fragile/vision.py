"""torchvision without the price of torch._dynamo.

Importing torchvision imports torchvision.ops, whose roi_align module imports
`torch._dynamo.utils` for one helper (`is_compile_supported`); torch._dynamo in turn imports
the compiler stack (sympy and more): about two thirds of torchvision's import time, paid by every
stage process that builds a model or reads a dataset, for a compiler the pipeline never uses.
`torchvision()` imports torchvision with a stand-in for that one module whose helper imports
the real one on first call, then removes the stand-in: roi_align stays correct, and a later
`import torch._dynamo` (torch.compile) gets the real module. A torchvision that needs more of
torch._dynamo at import time gets the plain import instead.
"""

from __future__ import annotations

import sys
import types
from typing import Any

STAND_INS = ("torch._dynamo", "torch._dynamo.utils")


def _is_compile_supported(device_type: Any) -> Any:
    from torch._dynamo.utils import is_compile_supported  # the real one, on first use

    return is_compile_supported(device_type)


def torchvision() -> types.ModuleType:
    """The torchvision package with its models and datasets, imported as the module docstring says."""
    if "torchvision" in sys.modules or any(name in sys.modules for name in STAND_INS):
        import torchvision as tv  # already imported, or torch._dynamo is: nothing to save

        return tv
    package = types.ModuleType("torch._dynamo")
    package.__path__ = []  # a package, so that its submodule's import resolves to the stand-in
    utils = types.ModuleType("torch._dynamo.utils")
    utils.is_compile_supported = _is_compile_supported  # type: ignore[attr-defined]
    sys.modules.update({"torch._dynamo": package, "torch._dynamo.utils": utils})
    try:
        import torchvision as tv
    except (ImportError, AttributeError):
        for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
            del sys.modules[name]
        tv = None
    finally:
        for name in STAND_INS:
            del sys.modules[name]
    if tv is None:
        import torchvision as tv
    return tv
