"""torchvision imported without torch._dynamo: same models, real torch._dynamo afterwards."""

from __future__ import annotations

import json
import subprocess
import sys

PROBE = r"""
import json, sys
import torch
from fragile.vision import torchvision
tv = torchvision()
dynamo_during_import = "torch._dynamo" in sys.modules
torch.manual_seed(0)
ours = tv.models.resnet18(num_classes=10).eval()
out = ours(torch.linspace(0, 1, 2 * 3 * 32 * 32).reshape(2, 3, 32, 32)).sum().item()
import torch._dynamo  # the real one, after the stand-in is gone
import torch._dynamo.utils
real = sys.modules["torch._dynamo.utils"]
helper = sys.modules["torchvision.ops.roi_align"].is_compile_supported("cpu")
print(json.dumps({"dynamo_during_import": dynamo_during_import, "out": out, "real_module": hasattr(real, "is_compile_supported"),
                  "helper": helper, "helper_real": real.is_compile_supported("cpu"),
                  "datasets": hasattr(tv.datasets, "MNIST")}))
"""

PLAIN = r"""
import json, torch, torchvision
torch.manual_seed(0)
model = torchvision.models.resnet18(num_classes=10).eval()
print(json.dumps({"out": model(torch.linspace(0, 1, 2 * 3 * 32 * 32).reshape(2, 3, 32, 32)).sum().item()}))
"""


def run(code: str) -> dict:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_torchvision_without_dynamo_builds_the_same_model_and_leaves_the_real_dynamo_importable():
    ours, plain = run(PROBE), run(PLAIN)
    assert ours["dynamo_during_import"] is False  # the compiler stack was not imported
    assert ours["out"] == plain["out"]  # the same architecture and initialisation, bit for bit
    assert ours["real_module"] and ours["helper"] == ours["helper_real"]  # roi_align's helper is the real one
    assert ours["datasets"]


def test_an_already_imported_torchvision_is_returned_as_it_is():
    out = run("import json, torchvision\nfrom fragile.vision import torchvision as tv\n"
              "print(json.dumps({'same': tv() is torchvision}))")
    assert out["same"]
