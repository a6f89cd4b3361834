"""Training, calibration and evaluation of the N-vs-V network (TensorFlow, MLflow, wfdb)."""
