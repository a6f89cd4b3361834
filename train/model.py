"""The Keras network: a 1-D CNN on the beat window beside a dense branch on RR features.

Inputs are named as the ONNX model's will be: ``beat`` (batch, 360, 2) and ``rr``
(batch, k), k the features of its preprocessing version (16 for nv-pre-2); the output
``p_v`` (batch, 1) is the V probability before calibration.
The RR branch standardises its inputs with statistics fitted on the training set,
inside the model, so the exported graph carries them.
"""

import keras
from keras import layers

DEFAULTS = {
    "filters": 16,  # first conv layer; the next two have 2x and 4x (32 cost ~4x the CPU, scored lower out of fold)
    "kernel": 7,
    "dense": 64,
    "rr_dense": 16,
    "dropout": 0.3,
    "learning_rate": 1e-3,
    # targets 0.05 / 0.95: the network does not grow over-confident on its training patients;
    # DS1 out-of-fold val_f1_V 0.796 against 0.786 without, seeds 42-44 (docs/MODEL.md)
    "label_smoothing": 0.1,
    "weight_decay": 0.0,  # AdamW decoupled weight decay
    "input_pool": 1,  # average the window over this many samples first (2: 180 Hz): CPU / input_pool
}


def build_model(window_shape, n_features, rr_mean, rr_std, params=None, name="ecg_nv_cnn"):
    """Compile a fresh network. ``rr_mean``/``rr_std``: (n_features,) training statistics."""
    p = {**DEFAULTS, **(params or {})}
    f, k = int(p["filters"]), int(p["kernel"])
    beat = keras.Input(shape=window_shape, name="beat")
    rr = keras.Input(shape=(n_features,), name="rr")

    x = beat
    if int(p["input_pool"]) > 1:
        # the band-pass stops at 40 Hz, so 180 or 120 Hz still holds the QRS; every
        # conv layer after this costs input_pool times less
        x = layers.AveragePooling1D(int(p["input_pool"]))(x)
    x = layers.Conv1D(f, k, padding="same", activation="relu")(x)
    x = layers.MaxPooling1D(2)(x)
    x = layers.Conv1D(2 * f, max(k - 2, 3), padding="same", activation="relu")(x)
    x = layers.MaxPooling1D(2)(x)
    x = layers.Conv1D(4 * f, 3, padding="same", activation="relu")(x)
    x = layers.GlobalAveragePooling1D()(x)

    # (rr - mean) / std as constants of the graph (a Normalization layer's statistics
    # became extra graph inputs in tf2onnx's export)
    r = layers.Rescaling(scale=(1.0 / rr_std).astype("float32"), offset=(-rr_mean / rr_std).astype("float32"))(rr)
    r = layers.Dense(int(p["rr_dense"]), activation="relu")(r)

    h = layers.Concatenate()([x, r])
    h = layers.Dense(int(p["dense"]), activation="relu")(h)
    h = layers.Dropout(float(p["dropout"]))(h)
    out = layers.Dense(1, activation="sigmoid", name="p_v")(h)

    model = keras.Model(inputs={"beat": beat, "rr": rr}, outputs=out, name=name)
    wd = float(p["weight_decay"])
    model.compile(
        optimizer=keras.optimizers.AdamW(float(p["learning_rate"]), weight_decay=wd) if wd > 0
        else keras.optimizers.Adam(float(p["learning_rate"])),
        loss=keras.losses.BinaryCrossentropy(label_smoothing=float(p["label_smoothing"])),
    )
    return model


def ensemble_members(model):
    """The networks an ``average_models`` ensemble averages, in order (member k of a
    cross-fitted run was held out on fold k); a single network gives ``[]``."""
    return [layer for layer in model.layers if isinstance(layer, keras.Model)]


def average_models(models):
    """One model whose ``p_v`` is the mean of ``models``' (same inputs): a seed ensemble."""
    first = models[0]
    beat = keras.Input(shape=first.input["beat"].shape[1:], name="beat")
    rr = keras.Input(shape=first.input["rr"].shape[1:], name="rr")
    outs = [m({"beat": beat, "rr": rr}) for m in models]
    return keras.Model(inputs={"beat": beat, "rr": rr}, outputs=layers.Average(name="p_v")(outs),
                       name="ecg_nv_cnn_ensemble")
