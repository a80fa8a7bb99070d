"""Scoring restored images: image metrics (`metrics`), the per-image evaluation loop shared by
training and the evaluate command (`scoring`), the HTML report (`report`) and the object
detectors of the paper's detection benchmark (`detection`)."""
