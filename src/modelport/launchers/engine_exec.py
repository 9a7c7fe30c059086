"""The first moments of an external engine's replica: get the weights, then become the engine.

`python -m modelport.launchers.engine_exec --source S [--revision R] [--unset NAME]... -- ENGINE ARGV`

The control plane launches this rather than the engine itself, so that a replica fetches its
model the way a builtin one does (from the machine's weight cache, pulling only what is missing,
with the endpoint's secrets from the environment) without blocking the control loop, and fails
with the pull's own message when the source cannot be had. Then it replaces itself with the
engine (`os.execve`): same process, same process group, so the runtime's health checks, SIGTERM
and the pid guard apply to the engine as to any replica. "{model_path}" in the engine's argv
becomes the local path of the weights (a folder, or a .gguf file).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from modelport import envs

MODEL_PATH = "{model_path}"


def _parse(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    if "--" not in argv:
        raise SystemExit("usage: engine_exec --source S [--revision R] [--unset NAME]... -- ENGINE ARGV")
    split = argv.index("--")
    parser = argparse.ArgumentParser(prog="modelport.launchers.engine_exec")
    parser.add_argument("--source", required=True)
    parser.add_argument("--revision", default=None)
    parser.add_argument("--unset", action="append", default=[], help="drop this variable from the env")
    parser.add_argument("--need-gguf", action="store_true", help="the engine loads a single .gguf file")
    parser.add_argument("--allow-pickle", action="store_true")
    parser.add_argument("--trust-remote-code", action="store_true")
    return parser.parse_args(argv[:split]), argv[split + 1 :]


def main(argv: list[str] | None = None) -> None:
    envs.apply_process_defaults()
    args, engine_argv = _parse(sys.argv[1:] if argv is None else argv)
    if not engine_argv:
        raise SystemExit("engine_exec: no engine command after --")
    from modelport import logs
    from modelport.models.cache import ModelCache
    from modelport.models.pull import resolve
    from modelport.models.remote import PullError
    from modelport.models.sources import SourceError

    logs.configure(envs.LOG_LEVEL.get())
    started = time.monotonic()
    try:
        path = resolve(
            args.source,
            args.revision,
            ModelCache(envs.model_cache_dir()),
            pull_missing=True,
            allow_pickle=args.allow_pickle,
            trust_remote_code=args.trust_remote_code,
        )
    except (SourceError, PullError) as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(2) from exc
    if args.need_gguf and not (path.is_file() and path.name.lower().endswith(".gguf")):
        message = f"error: {args.source} resolved to {path}, which is not a .gguf file"
        print(message, file=sys.stderr, flush=True)
        raise SystemExit(2)
    print(
        f"modelport: model ready at {path} in {time.monotonic() - started:.1f}s; starting {engine_argv[0]}",
        file=sys.stderr,
        flush=True,
    )
    env = envs.process_environment()
    for name in args.unset:
        env.pop(name, None)
    command = [arg.replace(MODEL_PATH, str(path)) for arg in engine_argv]
    os.execve(command[0], command, env)


if __name__ == "__main__":
    main()
