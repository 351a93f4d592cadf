"""The device agent: an HTTP/JSON service on a board (FastAPI + uvicorn).

It reports the board (``GET /v1/info``), hands out leases so that only one controller drives a board at
a time, sets frequency levels through the board-control guard (so the board is restored on shutdown,
crash or lease expiry), loads ONNX model artifacts and switches their pattern sets, and measures
inference windows: latency statistics together with the energy the meter saw in exactly that window.

Needs the ``agent`` extra (fastapi, uvicorn, onnxruntime); never imports torch.
"""

AGENT_API_VERSION = "1"
