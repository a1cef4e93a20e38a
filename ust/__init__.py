"""ust: Student-Teacher anomaly detection, as in "Uninformed Students".

Bergmann, Fauser, Sattlegger, Steger. *Uninformed Students: Student-Teacher
Anomaly Detection with Discriminative Latent Embeddings.* CVPR 2020
(arXiv:1911.02357). Each equation of the paper is one function here:

=====================================  ==========================================
Paper                                  ``ust``
=====================================  ==========================================
Patch networks (Sec. 3.1, suppl.)      :class:`PatchNet`
Fast dense extraction (Bailer 2017)    :class:`DensePatchNet`
L_k, knowledge distillation (Eq. 1)    :func:`knowledge_distillation_loss`
L_m, metric learning (Eqs. 2-4)        :func:`metric_learning_loss`
L_c, compactness (Eq. 5)               :func:`descriptor_compactness_loss`
Teacher loss (Eq. 6)                   :func:`teacher_loss`
Floor of L_k for d channels (Eq. 1)    :func:`distillation_floor`
L_k with a refitted decoder (Eq. 1)    :func:`refit_distillation_loss`
Target normalisation (Sec. 3.2)        :func:`normalize_descriptors`
Student loss (Eq. 8)                   :func:`student_regression_loss`
Ensemble mean (Eq. 9)                  :func:`ensemble_mean`
Regression error (Eq. 10)              :func:`regression_error`
Predictive variance (Eq. 11)           :func:`predictive_variance`
Combined score (Eq. 12)                :func:`anomaly_score`
Multi-scale fusion (Eq. 13)            :func:`fuse_scales`
=====================================  ==========================================

Section and equation numbers follow arXiv:1911.02357v2.

Around the equations: :mod:`ust.data` (datasets, the one-class protocol,
pretraining patches), :mod:`ust.backbones` (the pretrained network P),
:mod:`ust.training` (pretraining a teacher, training students),
:mod:`ust.model` (a trained detector), :mod:`ust.checkpoints`,
:mod:`ust.metrics`, :mod:`ust.baselines`, :mod:`ust.experiments` (the
one-class benchmark), :func:`pretrained_teacher` (the shipped teachers) and
the command line ``python -m ust``.
"""

from .checkpoints import CheckpointError, load_student_teacher, load_teacher, save_student_teacher, save_teacher
from .dense import DENSE_METHODS, PADDING_MODES, DensePatchNet, extract_patches, naive_dense_descriptors
from .model import MultiScaleStudentTeacher, StudentTeacher
from .networks import LEAKY_SLOPE, PATCH_SIZES, PatchNet, receptive_field
from .runtime import seed_everything, select_device
from .scores import (
    IMAGE_REDUCTIONS,
    SCORE_COMPONENTS,
    ScoreNormalization,
    anomaly_score,
    ensemble_mean,
    fuse_scales,
    image_score,
    predictive_variance,
    regression_error,
)
from .students import ChannelStatistics, make_students, normalize_descriptors, student_regression_loss
from .teacher_losses import (
    COMPACTNESS_PENALTIES,
    DistillationDecoder,
    correlation_matrix,
    descriptor_compactness_loss,
    distillation_floor,
    knowledge_distillation_loss,
    metric_learning_loss,
    refit_distillation_loss,
    teacher_loss,
)
from . import baselines, data, experiments, metrics, notebook, plotting  # noqa: F401  (subpackages, for `import ust`)
from .training import pretrain_teacher, teacher_statistics, train_students
from .weights import available_teachers, pretrained_teacher

__version__ = "0.1.0"

__all__ = [
    "PatchNet", "PATCH_SIZES", "LEAKY_SLOPE", "receptive_field",
    "DensePatchNet", "naive_dense_descriptors", "extract_patches", "PADDING_MODES", "DENSE_METHODS",
    "DistillationDecoder", "knowledge_distillation_loss", "metric_learning_loss", "correlation_matrix",
    "descriptor_compactness_loss", "teacher_loss", "COMPACTNESS_PENALTIES",
    "distillation_floor", "refit_distillation_loss",
    "ChannelStatistics", "normalize_descriptors", "student_regression_loss", "make_students",
    "ensemble_mean", "regression_error", "predictive_variance", "ScoreNormalization", "anomaly_score",
    "fuse_scales", "image_score", "SCORE_COMPONENTS", "IMAGE_REDUCTIONS",
    "StudentTeacher", "MultiScaleStudentTeacher", "pretrain_teacher", "teacher_statistics", "train_students",
    "pretrained_teacher", "available_teachers", "select_device", "seed_everything",
    "save_teacher", "load_teacher", "save_student_teacher", "load_student_teacher", "CheckpointError",
    "__version__",
]
