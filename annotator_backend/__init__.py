"""Everything of the annotation tool that is not web: data, models, embeddings, ONNX, jobs."""
