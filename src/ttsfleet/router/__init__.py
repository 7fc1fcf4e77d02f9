"""The router: the fleet's one gRPC front door.

A request's path is the module layout: ``discovery`` finds pods, ``endpoints``
keeps their state, ``load_watch`` keeps their load fresh, ``picker`` and
``saturation`` decide where it goes (or that it is shed), and ``forwarder``
passes its bytes through. ``server`` assembles them; ``main`` is the command.
"""
