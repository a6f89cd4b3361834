"""Signal core shared by training and serving (numpy only).

Nothing here imports scipy, TensorFlow or wfdb: the service imports this package.
The few scipy functions it was written with are reimplemented in ``ecg.dsp``.
"""

MODEL_FS = 360  # Hz: MIT-BIH's rate, the rate every model sees.
