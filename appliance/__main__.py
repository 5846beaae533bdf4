"""``python -m appliance`` is the ``kiln`` command."""

import multiprocessing

if __name__ == "__main__":
    multiprocessing.freeze_support()
    from appliance.cli import main

    main()
