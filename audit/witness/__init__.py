"""The audit witness: a small service a customer's security team runs on its
own machine (``printgate audit witness``).

Each round it fetches the gateway's newest signed checkpoint
(``client.GatewayClient``), checks the gateway's signature and that the new
tree extends the last one it cosigned (RFC 6962 consistency proof,
``judge``), countersigns it with its own Ed25519 key (``audit.cosignature``),
remembers it (``state.WitnessState``) and returns the cosignature to the
gateway, which stores it. A gateway whose log shrank or forked is refused
with the reason (``judge.WitnessRefused``); the witness never signs it.
"""
