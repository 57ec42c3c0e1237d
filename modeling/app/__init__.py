"""The web demo (Gradio) and its Grad-CAM attribution."""
