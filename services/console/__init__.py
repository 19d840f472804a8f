"""The console (控制台): the Chinese web application people use, served by its own process.

It holds people's accounts and sessions and the evidence files they upload, nothing of the
domain: every page is read, and every form sent, through the services' HTTP APIs as the person
signed in (a signed identity assertion, shared/assertions.py). The services decide who may do
what (docs/adr/0014).
"""
