"""Where weights come from: demo models built offline (more sources arrive with the model-source issue)."""
