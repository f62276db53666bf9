"""`python -m expiration` (or the `expiration` command): run the worker."""

from arq.worker import run_worker

from expiration.config import get_settings
from expiration.worker import worker_settings
from ticketing_common.logs import configure_logging


def main() -> None:
    configure_logging()
    run_worker(worker_settings(get_settings()))


if __name__ == "__main__":
    main()
