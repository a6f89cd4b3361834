"""Signal core shared by training and serving (numpy + scipy only).

Nothing here imports TensorFlow or wfdb: the service imports this package.
"""

MODEL_FS = 360  # Hz: MIT-BIH's rate, the rate every model sees.
