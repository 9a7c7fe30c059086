"""pytest's entry: the shared fixtures live in tests/support/fixtures.py."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from tests.support.fixtures import *  # noqa: F403
