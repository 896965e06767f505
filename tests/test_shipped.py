"""The one catalog of shipped runs (checkpoints/shipped.json, diffusion.training.shipped): every entry names a run
folder in this copy whose config says the entry's dataset and method, on a page of the app; a malformed entry is
refused with a message naming it."""

import json

import pytest

from diffusion.training.checkpoints import CHECKPOINTS_DIR, read_config
from diffusion.training.shipped import METHODS, PAGES, ShippedRun, shipped_runs

from conftest import ROOT


def test_every_shipped_run_is_in_this_copy_and_its_config_says_what_the_catalog_says():
    runs = shipped_runs()
    assert len(runs) >= 8 and len({r.folder for r in runs.values()}) == len(runs)
    for name, run in runs.items():
        config = read_config(CHECKPOINTS_DIR / run.folder)
        assert config.data.dataset == run.dataset, name
        assert ("flow" if config.train.objective == "flow" else "diffusion") == run.method, name
        assert (ROOT / "app_pages" / f"{run.page}.py").is_file(), name


def _catalog(tmp_path, *entries) -> dict[str, ShippedRun]:
    path = tmp_path / "shipped.json"
    path.write_text(json.dumps({"runs": list(entries)}))
    return shipped_runs(path)


ENTRY = {"name": "spirals", "folder": "spirals", "page": "toy2d", "dataset": "spirals", "method": "diffusion",
         "label": "spirals (2D MLP)", "about": "a run on the spirals"}


def test_a_new_shipped_run_is_one_entry(tmp_path):
    assert _catalog(tmp_path, ENTRY) == {"spirals": ShippedRun(**ENTRY)}


@pytest.mark.parametrize("entry,message", [
    ({**ENTRY, "page": "phase9"}, f"has page 'phase9'; allowed: {', '.join(PAGES)}"),
    ({**ENTRY, "method": "gan"}, f"has method 'gan'; allowed: {', '.join(METHODS)}"),
    ({**ENTRY, "folder": "../runs/x"}, "has folder '../runs/x'; allowed: a folder's name in checkpoints/"),
    ({k: v for k, v in ENTRY.items() if k != "label"}, "shipped run 0 is .*allowed: an object with the non-empty"),
    ({**ENTRY, "about": ""}, "shipped run 0 is .*allowed: an object with the non-empty"),
    ({**ENTRY, "role": "extra"}, "has role 'extra'; allowed: model, size-sweep"),
])
def test_a_malformed_entry_is_refused_naming_it(tmp_path, entry, message):
    with pytest.raises(ValueError, match=message):
        _catalog(tmp_path, entry)


def test_a_name_or_folder_listed_twice_is_refused(tmp_path):
    with pytest.raises(ValueError, match="name appears twice"):
        _catalog(tmp_path, ENTRY, {**ENTRY, "folder": "other"})
    with pytest.raises(ValueError, match="folder appears twice"):
        _catalog(tmp_path, ENTRY, {**ENTRY, "name": "other"})


def test_a_size_sweep_run_is_in_the_catalog_but_not_in_its_page_menus():
    from ui.jobs.shipped_runs import on_page
    sweep = [name for name, run in shipped_runs().items() if run.role == "size-sweep"]
    assert len(sweep) >= 3 and not set(sweep) & set(on_page("mnist_digit"))
    assert "digit0" in on_page("mnist_digit")
