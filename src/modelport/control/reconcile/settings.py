"""The control loop's timings and switches, shared by its parts (observe, actions, host refusal)."""

from __future__ import annotations

import dataclasses

from modelport import envs


@dataclasses.dataclass(frozen=True)
class LoopSettings:
    interval_s: float = 0.5
    # while a replica starts, its health is polled this often: a cold start's last step is
    # "ready → routed", and a request held at zero waits for exactly that
    starting_poll_s: float = 0.1
    drain_timeout_s: float = 60.0  # longest wait for in-flight requests before stopping a replica
    stop_grace_s: float = 30.0  # SIGTERM → SIGKILL
    start_timeout_s: float = 900.0  # a replica not healthy by then is stopped and counts as a failed start
    # failed probes in a row after which a replica that was ready is killed and restarted
    unhealthy_probes: int = dataclasses.field(default_factory=envs.unhealthy_probes)
    unhealthy_stop_grace_s: float = 1.0  # SIGTERM → SIGKILL for it: it is not serving anyway
    # `modelport up --allow-custom-commands`: checked before each launch (spec/host_code.py)
    allow_custom_commands: bool = False
