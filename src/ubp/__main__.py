"""`python -m ubp …` is `ubp …`; `torchrun … -m ubp …` launches it once per process."""

from ubp.cli import main

main()
