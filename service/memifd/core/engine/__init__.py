"""memifd's engine: one worker thread that owns every memif socket, interface and ring.

``worker`` is the only module that knows the thread (its loop, the command
eventfd, call/post, timers, fd watching, stall tracking). The others say on
their first line which thread runs them: ``registry`` (interface CRUD, limits,
sockets by path), ``dataplane`` (queue service, actions, capture fan-out,
inject), ``streams`` (capture, event and exchange subscriptions), ``links``
(the library's link events as LinkEvents), ``views`` (status projection and
its cache) and ``state`` (the per-interface entry and counters).
:mod:`memifd.core.manager` is the facade API handlers call.
"""
