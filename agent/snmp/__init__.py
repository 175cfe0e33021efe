"""The agent's SNMP engine.

"What to ask and how to read it" is pure (``oids``, ``values``, ``parsing``,
``profiles``) and tested on recorded ``.snmprec`` data; "how to ask" is
``transport`` (pysnmp 7 asyncio). ``identity.read_identity`` combines them.
"""
