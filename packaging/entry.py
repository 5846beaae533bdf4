"""Entry point of the frozen ``kiln`` executable (same program as ``python -m appliance``)."""

import multiprocessing

if __name__ == "__main__":
    multiprocessing.freeze_support()
    from appliance.cli import main

    main()
