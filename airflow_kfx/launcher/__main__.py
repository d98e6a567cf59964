"""``python -m airflow_kfx.launcher``: see :mod:`airflow_kfx.launcher.cli`."""

import signal
import sys

if __name__ == "__main__":
    # First of all: a sidecar may be told to stop (SIGTERM) very soon after it starts;
    # hold the signal pending from now on so it is never lost (cli.wait_for_stop takes it).
    if "--wait-for-sigterm" in sys.argv[1:]:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    from airflow_kfx.launcher.cli import main

    sys.exit(main())
