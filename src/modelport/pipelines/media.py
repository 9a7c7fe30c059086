"""Decode the images and audio clients send, with limits, into what processors take.

Images: Pillow, with its decompression-bomb guard tightened to MAX_PIXELS. Audio: soundfile
(libsndfile: WAV, FLAC, OGG/Vorbis, Opus, MP3), down-mixed to mono and resampled with a
polyphase filter to the model's sampling rate. Anything that does not decode is a 400 that
says why; too large a picture or too long a clip is a 413.
"""

from __future__ import annotations

import base64
import binascii
import io
import math
from fractions import Fraction
from typing import Any

import numpy as np
from numpy.typing import NDArray

from modelport.pipelines.errors import TaskInputError

MAX_PIXELS = 40_000_000  # 40 MP: a 6,300 x 6,300 photo; far above what any processor resizes from
MAX_AUDIO_SECONDS = 3600.0
AUDIO_FORMATS = "WAV, FLAC, OGG/Vorbis, Opus or MP3"


def as_bytes(value: Any, what: str, allow_urls: bool = False) -> bytes:
    """Raw bytes from an upload, or from base64 text in JSON (with or without a data: URL head)."""
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    if not isinstance(value, str) or not value:
        raise TaskInputError(f"`inputs` must be the {what} itself: raw bytes, or base64 text in JSON")
    if value.startswith(("http://", "https://")):
        raise TaskInputError(
            f"`inputs` is a URL: this endpoint does not fetch inputs from the network (its residency "
            f"rules keep it from calling out); send the {what}'s bytes, or base64 in JSON, instead",
            code="url_input_refused",
        )
    if value.startswith("data:"):
        value = value.partition(",")[2]
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise TaskInputError(f"`inputs` is not valid base64 for an {what}") from None


def decode_image(data: bytes) -> Any:
    """A PIL RGB image."""
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise TaskInputError("the image is empty")
    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.width * img.height > MAX_PIXELS:
                raise TaskInputError(
                    f"the image is {img.width}x{img.height} pixels, over the limit of {MAX_PIXELS:,}",
                    status=413,
                )
            img.load()
            return img.convert("RGB")
    except TaskInputError:
        raise
    except Image.DecompressionBombError:
        raise TaskInputError(f"the image is over the limit of {MAX_PIXELS:,} pixels", status=413) from None
    except UnidentifiedImageError:
        raise TaskInputError("the image cannot be decoded: not a PNG, JPEG, WebP, GIF, BMP or TIFF") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise TaskInputError(f"the image cannot be decoded: {exc}") from None


def decode_audio(data: bytes, rate: int) -> NDArray[np.float32]:
    """Mono float32 samples at `rate` Hz."""
    import soundfile

    if not data:
        raise TaskInputError("the audio file is empty")
    try:
        with soundfile.SoundFile(io.BytesIO(data)) as f:
            seconds = f.frames / f.samplerate if f.samplerate else 0.0
            if seconds > MAX_AUDIO_SECONDS:
                raise TaskInputError(
                    f"the audio is {seconds:.0f} s long, over the limit of {MAX_AUDIO_SECONDS:.0f} s",
                    status=413,
                )
            samples = f.read(dtype="float32", always_2d=True)
            source_rate = f.samplerate
    except TaskInputError:
        raise
    except (soundfile.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        raise TaskInputError(f"the audio cannot be decoded ({AUDIO_FORMATS} expected): {exc}") from None
    if samples.shape[0] == 0:
        raise TaskInputError("the audio file holds no samples")
    mono = samples.mean(axis=1, dtype=np.float32)
    return resample(mono, source_rate, rate)


def resample(samples: NDArray[np.float32], source: int, target: int) -> NDArray[np.float32]:
    if source == target:
        return np.ascontiguousarray(samples, dtype=np.float32)
    from scipy.signal import resample_poly

    ratio = Fraction(target, source).limit_denominator(1000)
    out = resample_poly(samples, ratio.numerator, ratio.denominator)
    return np.asarray(out, dtype=np.float32)


def audio_seconds(samples: NDArray[np.float32], rate: int) -> float:
    return math.floor(len(samples) / rate * 1000) / 1000


def encode_png(image: Any) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()
