"""`python -m gateway` runs the command line (used to start node processes)."""

from gateway.cli import app

if __name__ == "__main__":
    app()
