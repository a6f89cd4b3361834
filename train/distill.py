"""Knowledge distillation: one network learns a cross-fitted ensemble's probabilities.

The production ensemble averages 5 networks, so it costs 5 networks of CPU per beat
(issue 5). A student of the same shape as one member, trained on a mix of the
label and the ensemble's probability, costs one. Hinton, Vinyals & Dean 2015,
"Distilling the knowledge in a neural network" (arXiv:1503.02531).

A distilled run's model (the student) learns from the teacher run's ensemble on all of DS1, so no DS1
patient is left to validate it. Its validation is therefore nested: for each outer
fold k, an inner ensemble is cross-fitted on the other folds only (one member per
inner fold), and a fold student learns from that inner ensemble on the same
records. Neither has seen fold k, so on fold k both give honest out-of-fold
predictions, made the way the served model is made: the students' tune the
decision and give ``val_f1_V``; the inner ensembles' give ``val_f1_V_teacher_ensemble``,
a paired comparison on the same patients of what distilling costs or gains.
The served student trains for the median of the fold students' best epoch counts.

Measured on seeds 42, 43, 44 (README, "The production model"): the students lost 0.016
F1-V on average against their teacher ensembles on the same DS1 patients, so the
service keeps serving the ensemble.
"""

import numpy as np

from .evaluate import predict_raw


def soft_targets(teachers, beats, alpha):
    """``alpha * teacher probability + (1 - alpha) * label`` for every beat, shape (n,).

    ``teachers``: one network, or a list of networks whose probabilities are averaged.
    """
    teachers = teachers if isinstance(teachers, list) else [teachers]
    p = np.mean([predict_raw(t, beats) for t in teachers], axis=0)
    return (alpha * p + (1 - alpha) * beats.y).astype(np.float32)


def nested_out_of_fold(train, val, folds, network, seed, alpha, log, stop_set_of=None):
    """Out-of-fold V probabilities of fold students and of their inner ensembles' members.

    ``train``/``val``: the DS1 BeatSets (training beats, validation beats);
    ``folds``: lists of records; ``network(fit_set, stop_set, seed, prefix, targets=...)``
    fits a fresh network and returns ``(network, best_epoch)``; ``alpha=None``: no
    students, only the inner ensembles (``--nested-oof``). Returns
    ``(p_student (n_val,) or None, p_members (n_val, len(folds) - 1), best_epochs of
    the fold students)``; the inner ensemble's probability is ``p_members.mean(axis=1)``.
    ``stop_set_of(records)``: the beats that early-stop a member held out on ``records``
    (default: those of ``val``).
    """
    if stop_set_of is None:
        stop_set_of = lambda records: val.subset(np.isin(val.records, records))  # noqa: E731
    p_student = None if alpha is None else np.zeros(len(val))
    p_members, best_epochs = np.zeros((len(val), len(folds) - 1)), []
    for k, fold in enumerate(folds):
        held = np.isin(val.records, fold)
        held_out = val.subset(held)
        outer = train.subset(~np.isin(train.records, fold))
        inner = []
        for j, inner_fold in enumerate(f for i, f in enumerate(folds) if i != k):
            log(f"fold {k + 1}/{len(folds)}: inner member {j + 1}/{len(folds) - 1}")
            net, _ = network(outer.subset(~np.isin(outer.records, inner_fold)),
                             stop_set_of(inner_fold),
                             seed + 1000 * k + 100 * (j + 1), f"fold{k}_inner{j}_")
            inner.append(net)
            p_members[held, j] = predict_raw(net, held_out)
        if alpha is None:
            continue
        log(f"fold {k + 1}/{len(folds)}: student")
        student, best = network(outer, held_out, seed + 1000 * k, f"fold{k}_student_",
                                targets=soft_targets(inner, outer, alpha))
        best_epochs.append(best)
        p_student[held] = predict_raw(student, held_out)
    return p_student, p_members, best_epochs
