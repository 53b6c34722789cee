import os

import pytest

from nsynth_live.presets import (
    DEFAULT_PRESETS_DIR, Preset, PresetError, check_preset_instruments, list_presets, load_preset,
)
from tests.engine.additive_synth import INSTRUMENT_NAMES

GOOD = """format_version = 1
name = "{name}"
corners = ["a", "b", "c", "d"]
xy = [0.2, 0.8]
release_seconds = 0.3
gain_db = -3.0
"""


def write(directory, name, text):
    path = directory / f"{name}.toml"
    path.write_text(text)
    return path


def test_shipped_presets_load_and_use_model_instruments():
    names = list_presets()
    assert "default" in names and len(names) >= 4
    for name in names:
        preset = load_preset(name)
        assert preset.name == name and len(preset.corners) == 4
        check_preset_instruments(preset, INSTRUMENT_NAMES)
    assert load_preset("default").corners == (
        "organ_acoustic_005", "string_acoustic_011", "flute_acoustic_016", "reed_acoustic_015")


def test_round_trip_of_fields(tmp_path):
    write(tmp_path, "mine", GOOD.format(name="mine"))
    preset = load_preset("mine", presets_dir=tmp_path)
    assert preset == Preset(name="mine", corners=("a", "b", "c", "d"), xy=(0.2, 0.8),
                            release_seconds=0.3, gain_db=-3.0)


def test_unknown_preset_lists_the_valid_ones(tmp_path):
    write(tmp_path, "alpha", GOOD.format(name="alpha"))
    write(tmp_path, "beta", GOOD.format(name="beta"))
    with pytest.raises(PresetError, match="unknown preset 'gamma'.*alpha, beta"):
        load_preset("gamma", presets_dir=tmp_path)


@pytest.mark.parametrize("name", [
    "../default", "..", "/etc/passwd", "a/b", "a\\b", "x\x00", "", ".hidden", "default.toml",
    "a" * 65, "../../tmp/evil", "~root",
])
def test_names_that_are_not_plain_identifiers_are_refused(tmp_path, name):
    inner = tmp_path / "presets"
    inner.mkdir()
    write(tmp_path, "evil", GOOD.format(name="evil"))  # outside the presets dir
    with pytest.raises(PresetError, match="refused"):
        load_preset(name, presets_dir=inner)


def test_non_string_name_is_refused():
    with pytest.raises(PresetError, match="refused"):
        load_preset(None)


def test_symlink_out_of_the_presets_dir_is_refused(tmp_path):
    inner = tmp_path / "presets"
    inner.mkdir()
    target = write(tmp_path, "outside", GOOD.format(name="link"))
    os.symlink(target, inner / "link.toml")
    with pytest.raises(PresetError, match="outside the presets directory"):
        load_preset("link", presets_dir=inner)


def test_corrupt_toml_names_the_file(tmp_path):
    path = write(tmp_path, "broken", 'format_version = 1\nname = "broken\ncorners = [')
    with pytest.raises(PresetError, match=f"{path}.*not valid TOML"):
        load_preset("broken", presets_dir=tmp_path)


def test_binary_garbage_names_the_file(tmp_path):
    path = tmp_path / "bin.toml"
    path.write_bytes(b"\xff\xfe\x00\x01garbage")
    with pytest.raises(PresetError, match="bin.toml"):
        load_preset("bin", presets_dir=tmp_path)


@pytest.mark.parametrize("version", ["2", '"1"', "0"])
def test_unknown_format_version_is_refused(tmp_path, version):
    text = GOOD.format(name="v").replace("format_version = 1", f"format_version = {version}")
    path = write(tmp_path, "v", text)
    with pytest.raises(PresetError, match=f"{path}.*format_version"):
        load_preset("v", presets_dir=tmp_path)


def test_missing_format_version_is_refused(tmp_path):
    write(tmp_path, "v", GOOD.format(name="v").replace("format_version = 1\n", ""))
    with pytest.raises(PresetError, match="format_version None"):
        load_preset("v", presets_dir=tmp_path)


@pytest.mark.parametrize("old, new, message", [
    ('corners = ["a", "b", "c", "d"]', 'corners = ["a", "b", "c"]', "corners"),
    ("xy = [0.2, 0.8]", "xy = [0.2, 1.5]", "xy"),
    ("release_seconds = 0.3", "release_seconds = -1.0", "release_seconds"),
    ("gain_db = -3.0", 'gain_db = "loud"', "gain_db"),
    ('name = "p"', 'name = "other"', "must equal the file name"),
    ("gain_db = -3.0", "gain_db = -3.0\ncolour = 3", "unknown keys"),
])
def test_invalid_fields_name_the_file_and_field(tmp_path, old, new, message):
    path = write(tmp_path, "p", GOOD.format(name="p").replace(old, new))
    with pytest.raises(PresetError, match=message) as info:
        load_preset("p", presets_dir=tmp_path)
    assert str(path) in str(info.value)


def test_unknown_corner_lists_valid_instruments():
    preset = Preset(name="x", corners=("organ_acoustic_005", "nope_000", "flute_acoustic_016",
                                       "reed_acoustic_015"))
    with pytest.raises(PresetError, match=r"\['nope_000'\].*valid instruments: keyboard_acoustic_000"):
        check_preset_instruments(preset, INSTRUMENT_NAMES)


def test_default_presets_dir_is_the_repository_folder():
    assert DEFAULT_PRESETS_DIR.name == "presets" and (DEFAULT_PRESETS_DIR / "default.toml").is_file()


def test_broken_presets_are_left_out_of_the_valid_list_and_named(tmp_path):
    from nsynth_live.presets import preset_problems

    write(tmp_path, "alpha", GOOD.format(name="alpha"))
    write(tmp_path, "broken", "this is = = not toml")
    write(tmp_path, "wrongname", GOOD.format(name="other"))
    outside = tmp_path.parent / f"{tmp_path.name}-outside.toml"
    outside.write_text(GOOD.format(name="linked"))
    (tmp_path / "linked.toml").symlink_to(outside)
    (tmp_path / "dangling.toml").symlink_to(tmp_path / "nowhere.toml")
    assert list_presets(presets_dir=tmp_path) == ["alpha"]
    problems = preset_problems(presets_dir=tmp_path)
    assert set(problems) == {"broken", "wrongname", "linked", "dangling"}
    assert "not valid TOML" in problems["broken"] and "outside the presets directory" in problems["linked"]
    with pytest.raises(PresetError) as raised:
        load_preset("gamma", presets_dir=tmp_path)
    message = str(raised.value)
    assert "\n" not in message and "valid presets" in message and ": alpha; left out" in message
    assert "broken (" in message and "linked (" in message
