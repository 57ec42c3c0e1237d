"""Hugging Face Space entry point: the package's demo page for the model named by $MODEL_ID.

Publish (from the repository root; see the README section "Web demo"):
    hf repos create USER/artifact-detector-demo --type space --sdk gradio
    hf upload USER/artifact-detector-demo space . --type space
    hf upload USER/artifact-detector-demo modeling modeling --type space --exclude "*__pycache__*"
    hf spaces variables add USER/artifact-detector-demo MODEL_ID USER/artifact-detector   # or edit DEFAULT_MODEL
"""

import os

from modeling.app.demo import build_app

DEFAULT_MODEL = "USER/artifact-detector"  # the model repo this Space demonstrates

demo = build_app(os.environ.get("MODEL_ID", DEFAULT_MODEL))

if __name__ == "__main__":
    # Spaces set GRADIO_SERVER_NAME/PORT; locally this serves on 127.0.0.1:7860.
    demo.queue(default_concurrency_limit=1).launch()
