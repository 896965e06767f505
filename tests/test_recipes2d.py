"""The 2D recipes: one per preset, used by the CLI and run_config_2d, conditional runs on labelled sets, and the
expected-time estimate from timed steps."""

import json

import pytest
import torch

from diffusion.cli import main as cli
from diffusion.config import DataConfig
from diffusion.data.custom import custom_data
from diffusion.data.toy_datasets import TOY_DATASETS
from diffusion.training.defaults import CUSTOM_RECIPE, RECIPES_2D, recipe_2d, run_config_2d


def test_every_preset_has_a_recipe_predicting_v_with_a_cosine_decay():
    assert set(RECIPES_2D) == set(TOY_DATASETS)
    for name, recipe in RECIPES_2D.items():
        config = run_config_2d(name)
        assert config.data == DataConfig(name) and config.train.objective == "v" and config.train.decay == "cosine"
        assert (config.model.width, config.model.input_scale) == (recipe.width, recipe.input_scale)
        assert (config.train.steps, config.train.batch_size, config.train.lr) == (recipe.steps, recipe.batch_size,
                                                                                  recipe.lr)
    assert run_config_2d("moons", num_classes=2, steps=7).model.num_classes == 2
    assert run_config_2d("moons", steps=7).train.steps == 7
    with pytest.raises(ValueError, match="no 2D recipe for dataset 'mnist'"):
        recipe_2d("mnist")


def test_custom_sets_get_the_custom_recipe():
    data = custom_data("ring", [[torch.cos(torch.tensor(a / 5.0)).item(), torch.sin(torch.tensor(a / 5.0)).item()]
                                for a in range(40)])
    assert recipe_2d(data.dataset) == CUSTOM_RECIPE and run_config_2d(data).data == data


def test_the_cli_trains_a_2d_set_with_its_recipe(tmp_path):
    assert cli(["train", "--dataset", "spirals", "--steps", "3", "--out", str(tmp_path / "s")]) == 0
    saved = json.loads((tmp_path / "s" / "config.json").read_text())
    recipe = recipe_2d("spirals")
    assert saved["model"]["width"] == recipe.width and saved["model"]["input_scale"] == recipe.input_scale
    assert (saved["train"]["objective"], saved["train"]["decay"], saved["train"]["lr"]) == ("v", "cosine", recipe.lr)
    assert cli(["train", "--dataset", "moons", "--conditional", "--steps", "3", "--lr", "0.01",
                "--out", str(tmp_path / "c")]) == 0
    saved = json.loads((tmp_path / "c" / "config.json").read_text())
    assert saved["model"]["num_classes"] == 2 and saved["train"]["lr"] == 0.01
    assert cli(["train", "--dataset", "swissroll", "--conditional", "--steps", "3", "--out", str(tmp_path / "x")]) == 2

