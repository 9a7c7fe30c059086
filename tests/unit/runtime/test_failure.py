"""failure_line: the one line of a failed process's output that says why, never a traceback."""

from __future__ import annotations

import pytest

from modelport.runtime.failure import MAX_REASON_CHARS, failure_line

# a builtin replica on a truncated safetensors file, as the runtime keeps it: the exit, then the
# log's last lines (typer's rich traceback at 80 columns wraps the exception's line)
RICH = """exit code 1
│ /work/main/.venv/lib/python3.11/site-packages/transformers/modeling_utils.py │
│ :4579 in _load_pretrained_model                                              │
│                                                                              │
│ ❱ 4579 │   │   │   │   │   file_pointer = safe_open(file, framework="pt",    │
╰──────────────────────────────────────────────────────────────────────────────╯
SafetensorError: Error while deserializing header: incomplete metadata, file not
fully covered
"""
PLAIN = """INFO loading /models/chat
Traceback (most recent call last):
  File "/src/modelport/engine/engine.py", line 338, in _run
    self._setup()
    ^^^^^^^^^^^^^
ValueError: bad dtype

During handling of the above exception, another exception occurred:

Traceback (most recent call last):
  File "/src/modelport/cli/serve.py", line 89, in serve
    raise RuntimeError("the engine did not start") from exc
\x1b[31mmodelport.engine.loader.ModelLoadError: cannot load /models/chat: bad dtype\x1b[0m
"""


@pytest.mark.parametrize(
    ("text", "line"),
    [
        (
            RICH,
            "SafetensorError: Error while deserializing header: incomplete metadata, file not fully covered",
        ),
        (PLAIN, "modelport.engine.loader.ModelLoadError: cannot load /models/chat: bad dtype"),
        (
            "[rank0]: torch.OutOfMemoryError: CUDA out of memory\n",
            "torch.OutOfMemoryError: CUDA out of memory",
        ),
        (
            'Traceback (most recent call last):\n  File "x.py", line 1\nKeyboardInterrupt\n',
            "KeyboardInterrupt",
        ),
        # a logged error when there is no exception: the message without the logger's prefix
        (
            "INFO:hf-to-gguf:Loading\nERROR:hf-to-gguf:Model FooForCausalLM is not supported\n",
            "Model FooForCausalLM is not supported",
        ),
        (
            "INFO: Started\nERROR:    Application startup failed. Exiting.\n",
            "Application startup failed. Exiting.",
        ),
        # neither: the last line that is not a frame ("Error while …" is not an exception line)
        ("exit code -9", "exit code -9"),
        ("exit code 2\nError while reading the config\n", "Error while reading the config"),
        ("starting\nKilled\r\n\r\n", "Killed"),
        ("", ""),
        (None, ""),
    ],
)
def test_the_reason_is_one_line(text: str | None, line: str) -> None:
    assert failure_line(text) == line


def test_the_exception_line_wins_over_later_log_lines_and_errors() -> None:
    text = "RuntimeError: engine died\nERROR:    Application startup failed. Exiting.\nINFO: shutdown\n"
    assert failure_line(text) == "RuntimeError: engine died"


def test_a_long_reason_is_cut() -> None:
    long = "ValueError: " + "x" * 1000
    assert len(failure_line(long)) == MAX_REASON_CHARS and failure_line(long).endswith("…")
    assert failure_line(long, limit=20) == "ValueError: xxxxxxx…"
    assert "\n" not in failure_line(RICH + "\n" * 3)
