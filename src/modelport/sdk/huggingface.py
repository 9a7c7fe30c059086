"""Point huggingface_hub's Inference Endpoints calls at modelport.

    from modelport.sdk.huggingface import use_modelport
    use_modelport("http://127.0.0.1:8000")    # the one line
    from huggingface_hub import create_inference_endpoint
    ep = create_inference_endpoint("chat", repository="/models/chat", framework="pytorch",
                                   accelerator="cpu", instance_size="x1", instance_type="local",
                                   region="local", vendor="local",
                                   namespace="default", token=ADMIN_TOKEN)
    ep.wait(); ep.client.chat_completion(...)

Pass `namespace=` and `token=` to huggingface_hub's calls: without a namespace it asks the
Hub's whoami, which modelport does not serve (and which would leave the machine).
"""

from __future__ import annotations

from modelport import envs


def use_modelport(url: str | None = None) -> str:
    """Point huggingface_hub.constants.INFERENCE_ENDPOINTS_ENDPOINT at modelport; return the old value."""
    from huggingface_hub import constants

    previous = constants.INFERENCE_ENDPOINTS_ENDPOINT
    constants.INFERENCE_ENDPOINTS_ENDPOINT = (url or envs.URL.get()).rstrip("/") + "/v2"
    return previous
