"""``python -m unmask``: the command line. Importing this module runs nothing."""

if __name__ == "__main__":
    from unmask.cli import main

    main()
