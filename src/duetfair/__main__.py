"""``python -m duetfair`` (used by ``torchrun -m duetfair train ...``)."""

from duetfair.cli import main

main()
