"""Making blurred images: synthetic camera-shake kernels and blur (`motion_blur`), and real-blur
pairs from video clips plus video reading/writing (`video`)."""
