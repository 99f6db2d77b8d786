from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from fragile.errors import FragileError
from fragile.masking import MIN_PGD_STEPS
from fragile.params import Params, load_params, params_from_dict

ROOT = Path(__file__).resolve().parents[1]


def _with(**changes):
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    for dotted, value in changes.items():
        node = raw
        *parents, leaf = dotted.split("__")
        for key in parents:
            node = node[key]
        node[leaf] = value
    return raw


def test_the_shipped_params_file_is_valid_and_matches_the_defaults():
    params = load_params(ROOT / "params.yaml")
    assert params == Params()


def test_a_typo_names_the_key_and_the_closest_valid_one():
    raw = _with()
    raw["trian"] = raw.pop("train")
    with pytest.raises(FragileError, match=r"unknown params key 'trian'.*did you mean 'train'"):
        params_from_dict(raw)
    raw = _with()
    raw["train"]["epoch"] = 3
    with pytest.raises(FragileError, match=r"'train.epoch'.*did you mean 'train.epochs'"):
        params_from_dict(raw)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"epsilon": "0.1x"}, "epsilon must be a number"),
        ({"epsilon": float("nan")}, "epsilon must be a finite number"),
        ({"epsilon": -0.1}, r"epsilon must be in \[0, 1\]"),
        ({"epsilon": 1.5}, r"epsilon must be in \[0, 1\]"),
        ({"attack__epsilons": [0.0, 2.0]}, r"attack.epsilons\[1\] must be in \[0, 1\]"),
        ({"attack__epsilons": [0.1, 0.05]}, "strictly increasing"),
        ({"train__batch_size": 0}, "train.batch_size must be > 0"),
        ({"train__batch_size": -8}, "train.batch_size must be > 0"),
        ({"train__batch_size": 1}, "train.batch_size must be at least 2 for BatchNorm"),
        ({"train__epochs": 0}, "train.epochs must be > 0"),
        ({"train__max_examples": 1}, r"train.max_examples must be 0 \(the whole training split\) or at least 2"),
        ({"train__max_examples": -5}, "train.max_examples must be 0"),
        ({"train__epochs": -1}, "train.epochs must be > 0"),
        ({"train__nproc": 0}, r"train.nproc must be at least 1"),
        ({"train__nproc": 1.5}, "train.nproc must be an integer"),
        ({"train__sync_bn": "yes"}, "train.sync_bn must be true or false"),
        ({"train__epochs": 2.5}, "train.epochs must be an integer"),
        ({"train__checkpoints": []}, "train.checkpoints is empty"),
        ({"train__checkpoints": [3, 1]}, "strictly increasing"),
        ({"train__checkpoints": [1, 19]}, r"epoch 19, outside 1..train.epochs"),
        ({"harden__threshold": "truncat"}, r"harden.threshold must be one of .*did you mean 'truncate'"),
        ({"harden__norm": "l1"}, "harden.norm must be one of spectral, fro"),
        ({"harden__noise": 0}, "harden.noise must be > 0"),
        ({"data__dataset": "imagenet"}, "data.dataset must be one of"),
        ({"model__arch": "resnet34"}, "model.arch must be one of resnet18, resnet50, resnet101"),
        ({"data__download": "yes"}, "data.download must be true or false"),
        ({"rank__method": "taylr"}, r"rank.method must be one of ablation, taylor.*did you mean 'taylor'"),
        ({"rank__compare": "yes"}, "rank.compare must be true or false"),
        ({"rank__hybrid_slack": -1.0}, "rank.hybrid_slack must be >= 0"),
        ({"rank__hybrid_floor": -0.5}, "rank.hybrid_floor must be >= 0"),
        ({"attack__distance": "relativ"}, r"attack.distance must be one of absolute, relative.*did you mean"),
        ({"attack__pgd_epsilons": [0.2, 0.1]}, "attack.pgd_epsilons must be strictly increasing"),
        ({"attack__pgd_epsilons": [1.5]}, r"attack.pgd_epsilons\[0\] must be in \[0, 1\]"),
        ({"attack__pgd_steps": 0}, "attack.pgd_steps must be > 0"),
        ({"attack__pgd_step_size": -0.01}, r"attack.pgd_step_size must be in \[0.0, 1.0\)"),
        ({"attack__pgd_restarts": 0}, "attack.pgd_restarts must be > 0"),
        ({"attack__sanity_epsilon": 0.3}, r"attack.sanity_epsilon must be 0 \(off\) or in \[0.5, 1\]"),
        ({"attack__autoattack": "yes"}, "attack.autoattack must be true or false"),
        ({"analysis__bootstrap": -1}, "analysis.bootstrap must be >= 0"),
        ({"model__source": "files"}, r"model.source must be one of train, file, got 'files'; did you mean 'file'"),
        ({"model__source": "file", "train__checkpoints": [1, 2]},
         r"model.source is file: .* set train.checkpoints to \[0\] \(got \[1, 2\]\)"),
        ({"model__source": "file", "model__file": " ", "train__checkpoints": [0]}, "model.file is empty"),
        ({"train__checkpoints": [0, 2]}, r"epoch 0, outside 1..train.epochs .*\(epoch 0 is for model.source: file\)"),
        ({"model__mean": [0.5, 0.5, 0.5], "model__std": [0.2]}, "model.mean has 3 values and model.std 1"),
        ({"model__mean": [0.5], "model__std": [0.0]}, r"model.std\[0\] must be > 0"),
        ({"model__mean": [128], "model__std": [64]}, r"model.mean\[0\] must be in \[0, 1\]"),
        ({"model__mean": 0.5}, "model.mean must be a list"),
        ({"data__image_size": -1}, "data.image_size must be 0"),
        ({"data__image_size": 64}, "data.image_size resizes data.dataset: imagefolder only; set it to 0 for mnist5k"),
    ],
)
def test_bad_values_fail_with_a_message_naming_the_key(change, message):
    with pytest.raises(FragileError, match=message):
        params_from_dict(_with(**change))


def test_an_imported_model_and_an_image_folder_are_valid_params():
    params = params_from_dict(_with(model__source="file", model__file="models/import/resnet50.pt",
                                    model__arch="resnet50", model__mean=[0.485, 0.456, 0.406],
                                    model__std=[0.229, 0.224, 0.225], train__checkpoints=[0],
                                    data__dataset="imagefolder", data__image_size=224))
    assert params.model.mean == (0.485, 0.456, 0.406) and params.train.checkpoints == (0,)
    assert params.as_dict()["model"]["std"] == [0.229, 0.224, 0.225]
    assert params.data.image_size == 224


def test_missing_keys_take_their_defaults():
    params = params_from_dict({"epsilon": 0.05, "train": {"epochs": 5, "checkpoints": [5]}})
    assert params.epsilon == 0.05
    assert params.train.epochs == 5 and params.train.lr == Params().train.lr
    assert params.as_dict()["train"]["checkpoints"] == [5]


def test_unreadable_params_file(tmp_path):
    with pytest.raises(FragileError, match="not found"):
        load_params(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [unclosed\n")
    with pytest.raises(FragileError, match="not valid YAML"):
        load_params(bad)


def test_the_pgd_grid_always_holds_the_headline_epsilon_and_the_sanity_epsilon():
    params = params_from_dict(_with(epsilon=0.05, attack__pgd_epsilons=[0.1, 0.2]))
    assert params.attack.pgd_grid(params.epsilon) == (0.05, 0.1, 0.2, 0.5)
    assert params.attack.pgd_grid(0.1) == (0.1, 0.2, 0.5)  # no duplicate
    assert params.attack.pgd_grid(0.05, sanity=False) == (0.05, 0.1, 0.2)
    off = params_from_dict(_with(attack__pgd_epsilons=[], attack__sanity_epsilon=0))
    assert off.attack.pgd_grid(off.epsilon) == (0.1,)


def test_the_default_pgd_is_strong_enough_for_a_masking_verdict():
    attack = Params().attack
    assert attack.pgd_steps >= MIN_PGD_STEPS
    assert (attack.pgd_restarts, attack.autoattack) == (1, False)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"analysis__output": "relu6"}, r"analysis.output must be one of conv, bn, relu.*did you mean 'relu'"),
        ({"analysis__output": 1}, "analysis.output must be a string"),
        ({"analysis__significance": 0}, "analysis.significance must be strictly between 0 and 1"),
        ({"analysis__significance": 1.5}, "analysis.significance must be strictly between 0 and 1"),
        ({"analysis__chance_subsets": 10}, r"analysis.chance_subsets must be 0 .* or at least 20"),
        ({"analysis__chance_subsets": 50, "analysis__significance": 0.01},
         r"analysis.chance_subsets must be 0 .* or at least 100"),
        ({"analysis__chance_subsets": 1000.0}, "analysis.chance_subsets must be an integer"),
        ({"analysis__rank_bootstrap": -1}, "analysis.rank_bootstrap must be >= 0"),
        ({"analysis__claim_tolerance": 1.0}, r"analysis.claim_tolerance must be in \[0.0, 1.0\)"),
        ({"analysis__claim_tolerance": -0.1}, r"analysis.claim_tolerance must be in \[0.0, 1.0\)"),
    ],
)
def test_bad_analysis_values_name_the_key(change, message):
    with pytest.raises(FragileError, match=message):
        params_from_dict(_with(**change))


def test_the_analysis_outputs_are_the_readings_targeting_computes():
    from fragile.params import OUTPUTS
    from fragile.targeting import OUTPUTS as TARGETING_OUTPUTS

    assert OUTPUTS == TARGETING_OUTPUTS


def test_the_chance_baseline_and_ranking_bootstrap_can_be_turned_off():
    params = params_from_dict(_with(analysis__chance_subsets=0, analysis__rank_bootstrap=0))
    assert params.analysis.chance_subsets == 0 and params.analysis.rank_bootstrap == 0
    assert params_from_dict(_with(analysis__chance_subsets=20)).analysis.chance_subsets == 20
