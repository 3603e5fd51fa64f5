"""rs-plugin: certified robustness by randomized smoothing (Cohen, Rosenfeld & Kolter, ICML 2019).

The core needs numpy, scipy and pluggy; torch, ART, torchattacks and Ray come in through plugins.
"""

from .certificate import ABSTAIN, Certificate
from .core import SmoothedClassifier
from .hookspecs import hookimpl
from .noises import Noise
from .plugins import get_plugin_manager

__all__ = ["ABSTAIN", "Certificate", "Noise", "SmoothedClassifier", "get_plugin_manager", "hookimpl"]
__version__ = "0.1.0"
