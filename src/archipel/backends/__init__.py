"""Backends: where attempts run. One protocol, each implementation tested by one contract suite."""

from archipel.backends._ec2 import Ec2Backend, Ec2Config
from archipel.backends._fake import FakeBackend
from archipel.backends._local import LocalBackend
from archipel.backends._protocol import (
    AttemptState,
    Backend,
    LaunchRequest,
    LaunchResult,
    LogChunk,
    Observation,
    SiteHealth,
)
from archipel.backends._sagemaker import SageMakerBackend, SageMakerConfig
from archipel.backends._slurm import SlurmBackend

__all__ = [
    "AttemptState",
    "Backend",
    "Ec2Backend",
    "Ec2Config",
    "FakeBackend",
    "LaunchRequest",
    "LaunchResult",
    "LocalBackend",
    "LogChunk",
    "Observation",
    "SageMakerBackend",
    "SageMakerConfig",
    "SiteHealth",
    "SlurmBackend",
]
