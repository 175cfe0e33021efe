"""The audit pages' helpers: the /audit filter form (routers: ``portal.routers.audit``, ``portal.routers.audit_witness``)."""
