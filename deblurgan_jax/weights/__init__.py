"""Model files: training checkpoints and generator params (`checkpoints`), importers for the
official PyTorch weights (`torch_weights`) and TF SavedModel / ONNX export (`serving`)."""
