"""seg: Hydra-composed segmentation experiments with Keras 3 and MLflow."""
