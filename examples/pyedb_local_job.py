"""PyEDB job-manager "Synchronous usage" example, unchanged but for the import lines.

The body below is PyEDB 0.64's documented example (doc/source/workflows/job_manager/
submit_job.rst, ``local_sync_demo.py``) as is; only the two PyEDB imports were replaced
by one simfarm import. See docs/migrating-from-pyedb.md.
"""

# PyEDB:
# from pyedb.workflows.job_manager.backend.job_submission import (
#     create_hfss_config,
#     SchedulerType,
# )
# from pyedb.workflows.job_manager.backend.job_manager_handler import JobManagerHandler
from simfarm.compat.pyedb import JobManagerHandler, SchedulerType, create_hfss_config  # noqa: F401

project_path = r"D:\Jobs\my_design.aedb"

handler = JobManagerHandler()  # discovers ANSYS install & scheduler
handler.start_service()  # starts background aiohttp server

config = create_hfss_config(
    project_path=project_path,
)
config.machine_nodes[0].cores = 16  # use 16 local cores

job_id = handler.submit_job(config)  # blocks until job accepted
print("submitted job_id")

status = handler.wait_until_done(job_id)  # polls until terminal
print(f"job finished with status: {status}")

handler.close()  # graceful shutdown
