"""`python -m gateway` and the `gateway` command: the command line.

The command line is imported only when it runs: bulk-load worker processes are started with
"spawn", which re-imports the main script of the node process in every worker, and importing
`gateway.cli` there would load the whole web application (about 55 MB) into each worker.
"""


def main() -> None:
    from gateway.cli import app

    app()


if __name__ == "__main__":
    main()
