"""Project files on the worker: shared-storage path mapping and staged scratch runs."""

from simfarm.workers.files.staging import run_with_files

__all__ = ["run_with_files"]
