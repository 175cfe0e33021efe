"""ORM tables. Each area keeps its tables in its own module; all share ``Base``.

Import this package to register every table on ``Base.metadata``.
"""

from printgate.store.models import agent_health as agent_health
from printgate.store.models import audit as audit
from printgate.store.models import channel as channel
from printgate.store.models import core as core
from printgate.store.models import identity as identity
from printgate.store.models import nodes as nodes
from printgate.store.models import outbox as outbox
from printgate.store.models import readings as readings
from printgate.store.models import security_alerts as security_alerts
from printgate.store.models import vault as vault
from printgate.store.models.base import Base as Base
