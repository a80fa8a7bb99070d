"""Training and evaluation data: folder layouts and header scans without TensorFlow (`sources`),
the bundled demo photos (`demo_data`), TensorFlow image ops (`tf_ops`), the tf.data pipelines
(`pipeline`) and a TFDS builder for GoPro (`tfds_gopro`).

Importing this package imports nothing heavy: TensorFlow loads only with `tf_ops` / `pipeline`.
"""
