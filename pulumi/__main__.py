"""Entry point of the ailab-cloud Pulumi project: see README.md and ailab_cloud/program.py."""

from ailab_cloud.program import main

main()
