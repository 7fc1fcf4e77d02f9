"""Long-form, asynchronous synthesis: durable jobs run through the fleet.

``model`` says what a job is; ``backend`` is the queue-and-store interface,
implemented by ``sqlite_backend`` (embedded, the default) and
``redis_backend`` (Redis Streams, for clusters); ``storage`` keeps the audio;
``fleet_client`` splits texts across the fleet (with ``router.fanout``) and
``retry`` says what is retried and when; ``worker`` runs jobs and
``callback`` tells callers they ended. ``main`` is `ttsfleet worker`.
"""
