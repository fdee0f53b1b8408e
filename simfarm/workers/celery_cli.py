"""For Celery's own command line only: ``celery -A simfarm.workers.celery_cli inspect
active`` (or ``events``, ``flower``) finds here an app on the broker of the ``SIMFARM_*``
settings of its environment.

simfarm never imports this module: its worker builds its app from explicit settings
(:mod:`simfarm.workers.main`). Start workers with ``simfarm worker``, not ``celery
worker`` with this app, which has no task and no lifecycle.
"""

from simfarm.common.settings import Settings
from simfarm.workers.app import make_celery

app = make_celery(Settings())
