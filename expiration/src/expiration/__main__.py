"""`python -m expiration` (or the `expiration` command): run the worker."""

import logging

from arq.worker import run_worker

from expiration.config import get_settings
from expiration.worker import worker_settings


def main() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    run_worker(worker_settings(get_settings()))


if __name__ == "__main__":
    main()
