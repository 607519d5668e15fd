"""`python -m genaug ...` (and `torchrun ... -m genaug build ...`): the `genaug` console script."""

from genaug.cli.main import main

if __name__ == "__main__":
    main(prog_name="genaug")
