"""Choosing an output device by name: pure selection logic and its error messages."""

import pytest

from nsynth_live.io.audio import AudioDeviceError, OutputDevice, format_device_list, select_output_device

JACK = "JACK Audio Connection Kit"


@pytest.fixture
def devices():
    return [
        OutputDevice(name="HDA Intel PCH: ALC3246 Analog (hw:0,0)", host_api_name="ALSA", max_output_channels=2,
                     default_sample_rate=44100.0),
        OutputDevice(name="pulse", host_api_name="ALSA", max_output_channels=32, default_sample_rate=44100.0,
                     is_default=True),
        OutputDevice(name="system", host_api_name=JACK, max_output_channels=2, default_sample_rate=48000.0),
    ]


def test_name_matches_host_api_case_insensitively(devices):
    assert select_output_device("jack", devices).host_api_name == JACK
    assert select_output_device("JACK", devices).name == "system"


def test_name_matches_device_name_substring(devices):
    assert select_output_device("alc3246", devices).name.startswith("HDA Intel")


def test_first_match_in_portaudio_order(devices):
    assert select_output_device("ALSA", devices).name.startswith("HDA Intel")


def test_none_picks_default_then_first(devices):
    assert select_output_device(None, devices).name == "pulse"
    no_default = [d for d in devices if not d.is_default]
    assert select_output_device(None, no_default) is no_default[0]


def test_unknown_name_lists_every_device_and_the_fix(devices):
    with pytest.raises(AudioDeviceError) as info:
        select_output_device("Focusrite", devices)
    message = str(info.value)
    assert "'Focusrite'" in message
    for device in devices:
        assert device.label in message
    assert "--list-devices" in message


def test_no_device_at_all_says_so_and_offers_offline():
    with pytest.raises(AudioDeviceError) as info:
        select_output_device(None, [])
    assert "no audio output device" in str(info.value)
    assert "--offline" in str(info.value)
    with pytest.raises(AudioDeviceError):
        select_output_device("JACK", [])


def test_empty_name_is_refused(devices):
    with pytest.raises(AudioDeviceError, match="empty"):
        select_output_device("  ", devices)


def test_listing_marks_default(devices):
    listing = format_device_list(devices)
    assert "* pulse (ALSA)" in listing
    assert f"system ({JACK}): 2 out, 48000 Hz" in listing
    assert "no audio output devices" in format_device_list([])


def test_list_output_devices_runs_against_portaudio():
    """Whatever this machine has (possibly nothing), the listing is a list of output devices."""
    pytest.importorskip("sounddevice", exc_type=OSError)
    from nsynth_live.io.audio import list_output_devices

    listed = list_output_devices()
    assert all(d.max_output_channels >= 1 for d in listed)
