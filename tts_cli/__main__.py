"""`python -m tts_cli`: the same as the `tts` console script."""

from tts_cli.app import run

run()
