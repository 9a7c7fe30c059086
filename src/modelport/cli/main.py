"""Entry point of the `modelport` command."""

from __future__ import annotations

import typer

from modelport import envs
from modelport.cli.audit_cmd import audit_app
from modelport.cli.bench_cmd import bench_app
from modelport.cli.demo_cmd import demo_app
from modelport.cli.doctor_cmd import doctor_command
from modelport.cli.endpoints_cmd import endpoints_app
from modelport.cli.engines_cmd import engines_app
from modelport.cli.keys_cmd import keys_app
from modelport.cli.models_cmd import models_app
from modelport.cli.plan_cmd import plan_command
from modelport.cli.serve_cmd import serve
from modelport.cli.up_cmd import up
from modelport.cli.usage_cmd import usage_command

app = typer.Typer(
    name="modelport",
    help="Self-hosted inference endpoints for Hugging Face models.",
    no_args_is_help=True,
    add_completion=False,
)
app.command("serve")(serve)
app.command("up")(up)
app.command("plan")(plan_command)
app.command("usage")(usage_command)
app.command("doctor")(doctor_command)
app.add_typer(audit_app, name="audit")
app.add_typer(bench_app, name="bench")
app.add_typer(demo_app, name="demo")
app.add_typer(endpoints_app, name="endpoints")
app.add_typer(engines_app, name="engines")
app.add_typer(keys_app, name="keys")
app.add_typer(models_app, name="models")


def main() -> None:
    # before any command imports huggingface_hub or torch: no telemetry, no registry fetches
    envs.apply_process_defaults()
    app()


if __name__ == "__main__":
    main()
