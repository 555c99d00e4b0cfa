"""Shared set-up of the unit tests."""

import sys
from pathlib import Path

# The Pulumi project's package lives in pulumi/ailab_cloud and is imported as `ailab_cloud`: the
# directory pulumi/ itself goes on the path.  (pulumi/ has no __init__.py, so the repository root on
# the path never shadows the Pulumi SDK.)
PULUMI_PROJECT = Path(__file__).resolve().parents[2] / "pulumi"
if str(PULUMI_PROJECT) not in sys.path:
    sys.path.insert(0, str(PULUMI_PROJECT))
