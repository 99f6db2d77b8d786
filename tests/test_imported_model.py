"""End to end with weights trained elsewhere: a torchvision ResNet-50 state_dict (the layout of
torchvision's ImageNet file) imported by the train stage (model.source: file) on an ImageFolder of
PNGs, then rank → attack_target → harden → evaluate → summarize → figures → report through
`dvc repro`; the model registry finds both models (dvc.yaml artifacts, GTO, `dvc artifacts get`)
and `dvc plots show` / `dvc plots diff` draw the 95% interval bands.

Nothing downloads: the backbone is randomly initialised and its classifier is a least-squares
read-out fitted here, so that predictions, and so the kernel ranking, depend on conv1.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
import yaml
from PIL import Image

from fragile import models
from pipeline_repo import audit_log, audited_env, env, make_repo, sh
from stage_deps import read_logs, reads_by_stage, resolve_stages, unaudited_in, undeclared_reads

IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
CLASSES, PER_CLASS, SIDE = ("cat", "dog", "fox"), 10, 32
WEIGHTS = "weights/resnet50.pt"


def _write_images(root: Path) -> tuple[np.ndarray, np.ndarray]:
    """root/<class>/<i>.png, 32×32 RGB noise a little brighter in the class's own channel (a
    faint signal: the read-out then leans on many kernels, and dropping some costs accuracy);
    the pixels and labels in ImageFolder's order (classes sorted, files sorted)."""
    rng = np.random.default_rng(0)
    images, labels = [], []
    for label, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True)
        for i in range(PER_CLASS):
            pixels = rng.integers(0, 160, size=(SIDE, SIDE, 3), dtype=np.uint8)
            pixels[..., label] += 10
            Image.fromarray(pixels).save(root / name / f"{i:02d}.png")
            images.append(pixels.transpose(2, 0, 1))
            labels.append(label)
    return np.stack(images), np.array(labels)


def _resnet50_weights(images: np.ndarray, labels: np.ndarray) -> dict[str, torch.Tensor]:
    """A randomly initialised torchvision resnet50 (3 classes) whose fc is the least-squares
    read-out of its features onto the labels: the state_dict another script would save."""
    torch.manual_seed(0)
    net = torchvision.models.resnet50(num_classes=len(CLASSES)).eval()
    fc, net.fc = net.fc, torch.nn.Identity()
    x = torch.from_numpy(images).float() / 255
    x = (x - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        features = net(x)
        mu, sd = features.mean(0), features.std(0) + 1e-6
        design = torch.cat([(features - mu) / sd, torch.ones(len(features), 1)], 1).double()
        targets = torch.nn.functional.one_hot(torch.from_numpy(labels), len(CLASSES)).double()
        solution = torch.linalg.lstsq(design, targets).solution.float()  # 2049 unknowns, 30 images: fits all
        weight = solution[:-1] / sd[:, None]  # the read-out of the raw features
        fc.weight.copy_(weight.T)
        fc.bias.copy_(solution[-1] - mu @ weight)
    net.fc = fc
    return net.state_dict()


def _single_thread() -> dict[str, str]:
    """A ResNet-50 on 32×32 images is many small convolutions: threads only contend for them."""
    return {**env(), "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def imported(tmp_path_factory) -> Path:
    """The tiny project after `dvc repro` on the imported ResNet-50, committed."""
    base = tmp_path_factory.mktemp("imported")
    images, labels = _write_images(base / "images")
    repo = make_repo(base / "repo", {
        "data": {"dataset": "imagefolder", "root": str(base / "images"), "download": False,
                 "val_fraction": 0.2, "test_fraction": 0.3},
        "model": {"arch": "resnet50", "stem": "imagenet", "source": "file", "file": WEIGHTS,
                  "mean": IMAGENET_MEAN, "std": IMAGENET_STD},
        "train": {"checkpoints": [0], "batch_size": 16},
        "rank": {"split": "train", "max_examples": 18, "batch_size": 18},  # val has 1 image per class
        "attack": {"epsilons": [0.0, 0.1], "max_examples": 9, "batch_size": 9},
        "harden": {"search_examples": 9},
        "evaluate": {"max_examples": 9, "batch_size": 9},
        "analysis": {"bootstrap": 100, "chance_subsets": 100, "rank_bootstrap": 100},
    })
    (repo / "weights").mkdir()
    torch.save(_resnet50_weights(images, labels), repo / WEIGHTS)
    with open(repo / ".gitignore", "a", encoding="utf-8") as fh:
        fh.write("/weights/\n")  # a DVC dependency need not be in git; 95 MB would only slow the test
    audit_log(repo).mkdir()  # each stage process logs the project files it reads (tests/test_dvc_deps.py)
    sh("dvc", "repro", cwd=repo, environ={**audited_env(repo, audit_log(repo)), "OMP_NUM_THREADS": "1"})
    sh("git", "add", "-A", cwd=repo)
    sh("git", "commit", "-qm", "reproduce on the imported resnet50", cwd=repo)
    return repo


def test_the_imported_resnet50_is_the_epoch_0_checkpoint_with_its_weights_and_normalisation(imported):
    weights = torch.load(imported / WEIGHTS, weights_only=True)
    model, meta = models.load_with_meta(imported / "models/original/epoch_0.pt", expect_arch="resnet50",
                                        expect_classes=3, expect_channels=3)
    assert (meta["epoch"], meta["stem"], meta["dataset"]) == (0, "imagenet", "imagefolder")
    assert meta["mean"] == IMAGENET_MEAN and meta["std"] == IMAGENET_STD
    state = model.state_dict()
    assert all(torch.equal(state[f"net.{key}"], value) for key, value in weights.items())
    sha = hashlib.sha256((imported / WEIGHTS).read_bytes()).hexdigest()
    assert meta["imported_from"] == {"file": WEIGHTS, "sha256": sha}
    run = json.loads((imported / "models/original/run.json").read_text())
    assert run["imported_from"]["sha256"] == sha
    logged = json.loads((imported / "dvclive/train/metrics.json").read_text())
    assert logged["train"]["accuracy"] == 1.0  # the read-out was fitted on every image
    assert logged["val"]["accuracy"] == 1.0


def test_rank_attack_harden_and_evaluate_ran_on_it_and_dvc_is_up_to_date(imported):
    for path in ("results/rank/epoch_0.json", "results/attack/epoch_0.json", "results/harden/epoch_0.json",
                 "results/evaluate/epoch_0.json", "models/hardened/epoch_0.pt", "report/report.md"):
        assert (imported / path).is_file(), path
    rank = json.loads((imported / "results/rank/epoch_0.json").read_text())
    assert rank["fragile"] and rank["null"] and len(rank["fragile"]) + len(rank["null"]) == 64
    headline = json.loads((imported / "metrics/headline.json").read_text())
    assert headline["epoch_0"]["original"]["clean_accuracy"] == 1.0
    hardened = models.load(imported / "models/hardened/epoch_0.pt")
    original = models.load(imported / "models/original/epoch_0.pt")
    changed = [k for k, v in original.state_dict().items() if not torch.equal(v, hardened.state_dict()[k])]
    assert changed == ["net.conv1.weight"]  # harden touches analysis.layer only
    status = sh("dvc", "status", "--json", cwd=imported).stdout
    assert json.loads(status) == {}


def test_the_import_declares_what_it_reads_the_weights_among_them(imported):
    stages = resolve_stages(yaml.safe_load((imported / "dvc.yaml").read_text(encoding="utf-8")), imported)
    reads = reads_by_stage(read_logs(audit_log(imported)), stages)
    assert WEIGHTS in reads["train"] and WEIGHTS in stages["train"]["deps"]  # ${model.file}
    assert undeclared_reads(stages, reads, unaudited_in(imported)) == {}


def test_editing_the_imported_weights_reruns_the_import(imported):
    status = sh("dvc", "status", "train", "--json", cwd=imported)
    assert json.loads(status.stdout) == {}
    path = imported / WEIGHTS
    before = path.read_bytes()
    try:
        path.write_bytes(before + b"\0")
        changed = json.loads(sh("dvc", "status", "train", "--json", cwd=imported).stdout)
        assert {"changed deps": {WEIGHTS: "modified"}} in changed["train"]
    finally:
        path.write_bytes(before)


def test_the_model_registry_lists_both_models_and_dvc_artifacts_get_fetches_one(imported, tmp_path):
    from dvc.repo import Repo

    with Repo(str(imported)) as dvc_repo:  # what `dvc artifacts get` and DVC Studio read
        declared = dvc_repo.artifacts.read()["dvc.yaml"]
    assert {name: (a.path, a.type) for name, a in declared.items()} == {
        "fragile-original": ("models/original", "model"), "fragile-hardened": ("models/hardened", "model")}
    assert all(a.desc and "resnet" in a.labels for a in declared.values())
    # GTO registers versions as git tags; `dvc artifacts get` fetches the latest registered one
    for name in declared:
        sh("gto", "register", name, cwd=imported)
    shown = json.loads(sh("gto", "show", "--json", cwd=imported).stdout)
    assert {name: shown[name]["version"] for name in declared} == dict.fromkeys(declared, "v0.0.1")
    out = tmp_path / "fetched"
    sh("dvc", "artifacts", "get", str(imported), "fragile-hardened", "-o", str(out), cwd=tmp_path)
    assert (out / "epoch_0.pt").read_bytes() == (imported / "models/hardened/epoch_0.pt").read_bytes()


def test_plots_show_and_diff_draw_the_95_percent_band(imported, tmp_path):
    shown = json.loads(sh("dvc", "plots", "show", "--json", cwd=imported).stdout)
    for name, y in (("plots/accuracy_vs_epsilon.csv", "accuracy"), ("plots/targeting_vs_epsilon.csv", "targeting_pct")):
        (plot,) = shown["data"][name]
        band, line = plot["content"]["layer"]
        assert band["mark"]["type"] == "errorband" and line["encoding"]["y"]["field"] == y
        rows = plot["content"]["data"]["values"]
        assert rows and all(float(r["low"]) <= float(r[y]) <= float(r["high"]) for r in rows)
        assert any(float(r["low"]) < float(r["high"]) for r in rows)
    html = tmp_path / "html"
    sh("dvc", "plots", "show", "-o", str(html), cwd=imported)
    page = (html / "index.html").read_text(encoding="utf-8")
    assert page.count('"errorband"') == 2 and '"y2": {"field": "high"}' in page
    # a second experiment (only summarize and the report rerun): one band per series and revision
    sh("dvc", "exp", "run", "-n", "no-bootstrap", "-S", "analysis.bootstrap=0", cwd=imported,
       environ=_single_thread())
    diff = json.loads(sh("dvc", "plots", "diff", "HEAD", "no-bootstrap", "--json", cwd=imported).stdout)
    (plot,) = diff["data"]["plots/accuracy_vs_epsilon.csv"]
    band = plot["content"]["layer"][0]
    assert band["encoding"]["detail"]["field"] == "rev"
    rows = plot["content"]["data"]["values"]
    assert {r["rev"] for r in rows} == {"HEAD", "no-bootstrap"} and all("low" in r and "high" in r for r in rows)
