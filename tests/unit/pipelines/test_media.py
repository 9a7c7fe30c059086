"""media.py: bytes from uploads and base64, image and audio decoding with their limits."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest

from modelport.pipelines.errors import TaskInputError
from modelport.pipelines.media import as_bytes, audio_seconds, decode_audio, decode_image, encode_png
from tests.support.task_models_media import audio_bytes, image_bytes, oversized_png


def test_as_bytes_takes_raw_bytes_base64_and_data_urls() -> None:
    raw = b"\x00\x01binary"
    assert as_bytes(raw, "image") == raw
    assert as_bytes(bytearray(raw), "image") == raw
    assert as_bytes(base64.b64encode(raw).decode(), "image") == raw
    assert as_bytes("data:image/png;base64," + base64.b64encode(raw).decode(), "image") == raw


@pytest.mark.parametrize(
    ("value", "says", "code"),
    [
        ("not base64!", "not valid base64", None),
        ("", "raw bytes, or base64", None),
        (None, "raw bytes, or base64", None),
        (["a"], "raw bytes, or base64", None),
        ("https://example.com/a.png", "does not fetch", "url_input_refused"),
    ],
)
def test_as_bytes_refuses(value: object, says: str, code: str | None) -> None:
    with pytest.raises(TaskInputError, match=says) as err:
        as_bytes(value, "image")
    assert err.value.status == 400 and err.value.code == code


def test_decode_image_gives_rgb_of_any_mode() -> None:
    from PIL import Image

    for mode in ("RGBA", "L", "P", "RGB"):
        buf = io.BytesIO()
        Image.new(mode, (7, 5)).save(buf, format="PNG")
        image = decode_image(buf.getvalue())
        assert image.mode == "RGB" and image.size == (7, 5)
    assert decode_image(image_bytes(9, 4, "JPEG")).size == (9, 4)


@pytest.mark.parametrize(
    ("data", "status", "says"),
    [
        (b"", 400, "empty"),
        (b"GIF89a" + b"\x00" * 3, 400, "cannot be decoded"),
        (b"plain text, not a picture", 400, "not a PNG, JPEG"),
        (image_bytes(64, 64)[:200], 400, "cannot be decoded"),  # cut inside the pixel data
        (oversized_png(8000, 8000), 413, "over the limit"),
    ],
)
def test_decode_image_refuses(data: bytes, status: int, says: str) -> None:
    with pytest.raises(TaskInputError, match=says) as err:
        decode_image(data)
    assert err.value.status == status


def test_encode_png_round_trips() -> None:
    image = decode_image(image_bytes(6, 3))
    assert np.array_equal(np.asarray(decode_image(encode_png(image))), np.asarray(image))


def test_decode_audio_mixes_down_and_resamples() -> None:
    import soundfile

    left = np.linspace(-0.5, 0.5, 8000, dtype=np.float32)
    stereo = np.stack([left, np.zeros_like(left)], axis=1)
    buf = io.BytesIO()
    soundfile.write(buf, stereo, 8000, format="FLAC", subtype="PCM_24")
    samples = decode_audio(buf.getvalue(), 8000)
    assert samples.dtype == np.float32 and samples.shape == (8000,)
    assert np.allclose(samples, left / 2, atol=1e-4)  # the mean of the two channels
    upsampled = decode_audio(buf.getvalue(), 16000)
    assert upsampled.shape == (16000,) and audio_seconds(upsampled, 16000) == 1.0
    assert decode_audio(audio_bytes(0.25, rate=44100), 16000).shape == (4000,)


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (b"", "empty"),
        (audio_bytes(0.5)[:30], "cannot be decoded"),
        (b"ID3 not really an mp3", "cannot be decoded"),
        (image_bytes(), "cannot be decoded"),
    ],
)
def test_decode_audio_refuses(data: bytes, says: str) -> None:
    with pytest.raises(TaskInputError, match=says) as err:
        decode_audio(data, 16000)
    assert err.value.status == 400


def test_an_audio_file_without_samples_is_refused() -> None:
    import soundfile

    buf = io.BytesIO()
    soundfile.write(buf, np.zeros(0, dtype=np.float32), 16000, format="WAV")
    with pytest.raises(TaskInputError, match="no samples"):
        decode_audio(buf.getvalue(), 16000)


def test_audio_seconds_rounds_down_to_the_millisecond() -> None:
    assert audio_seconds(np.zeros(16001, dtype=np.float32), 16000) == 1.0
    assert audio_seconds(np.zeros(15999, dtype=np.float32), 16000) == 0.999
