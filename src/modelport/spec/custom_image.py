"""`model.image.custom`: the shape of a user's own server command (checked when an endpoint is written)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# What a custom server speaks unless it says otherwise: the OpenAI routes (the gateway translates
# TGI, TEI and task-route requests into them).
DEFAULT_APIS = frozenset({"openai"})
KNOWN_APIS = frozenset({"openai", "tgi", "tei"})


class CustomImageError(ValueError):
    """An image.custom object that cannot be run; the message says what to give."""


def check_custom_image(config: Mapping[str, Any]) -> dict[str, Any]:
    """Validate image.custom (camelCase as on the wire; huggingface_hub's snake_case accepted)."""
    if "url" in config and "command" not in config:
        raise CustomImageError(
            "image.custom.url names a container image, and modelport runs no containers: give "
            "image.custom.command, the argv that starts your server, "
            'e.g. ["python", "app.py", "--port", "{port}"]'
        )
    command = config.get("command")
    if not isinstance(command, list) or not command or not all(isinstance(a, str) and a for a in command):
        raise CustomImageError("image.custom.command must be a non-empty list of strings (the argv)")
    if not any("{port}" in arg for arg in command):
        raise CustomImageError('image.custom.command must pass the port: include "{port}" in an argument')
    health = config.get("healthRoute", config.get("health_route", "/health"))
    if not isinstance(health, str) or not health.startswith("/"):
        raise CustomImageError("image.custom.healthRoute must be a path such as /health")
    apis = config.get("apis", sorted(DEFAULT_APIS))
    if not isinstance(apis, list) or not apis or not set(apis) <= KNOWN_APIS:
        raise CustomImageError(f"image.custom.apis must list some of {sorted(KNOWN_APIS)}")
    env = config.get("env", {})
    if not isinstance(env, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in env.items()
    ):
        raise CustomImageError("image.custom.env must map names to string values")
    sleep_mode = config.get("sleepMode", False)
    if not isinstance(sleep_mode, bool):
        raise CustomImageError("image.custom.sleepMode must be true or false")
    checked = {"command": command, "healthRoute": health, "apis": apis, "env": env}
    # the server has vLLM's sleep routes (e.g. your own vLLM build run as a command on a GPU)
    return {**checked, "sleepMode": True} if sleep_mode else checked
