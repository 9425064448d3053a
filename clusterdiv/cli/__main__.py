"""`python -m clusterdiv.cli ...`, the same entry point as the `clusterdiv` console script."""

from clusterdiv.cli.root import main

main()
