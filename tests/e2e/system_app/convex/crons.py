from convection import Crons, internal

crons = Crons()
crons.interval("daily noop", {"hours": 24}, internal.systables.noop, {})
