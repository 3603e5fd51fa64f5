"""How tight is the certificate? Cohen et al. (2019), section 4, on scikit-learn's digits by default.

A thin call of ``rs-plugin tightness`` (:mod:`rs_plugin.attacks.command`), which a wheel installs too::

    python examples/tightness_attack.py                 # digits, a few minutes on 2 CPU cores
    python examples/tightness_attack.py --quick         # about a minute
    python examples/tightness_attack.py --dataset cifar10 --data-dir DATA \\
        --checkpoint models/cifar10/resnet110/noise_0.25/checkpoint.pth.tar \\
        --sigma 0.25 --num-examples 100                 # a released model on local data
"""

from __future__ import annotations

import sys

from rs_plugin.attacks.command import main

if __name__ == "__main__":
    sys.exit(main())
