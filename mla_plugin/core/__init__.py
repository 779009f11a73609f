"""Framework-free core of MLA and the baselines: plain PyTorch, no MMF import.

Each module holds one piece of the method, readable against the paper's equations:

- :mod:`.projector` -- head gradient modification, the OWM/RLS projector (Eq. 3-4);
- :mod:`.fusion` -- test-time dynamic fusion by entropy (Eq. 5-7) and the fixed/mean rules;
- :mod:`.schedule` -- which modality trains at which step (Eq. 1 and the code's per-batch order);
- :mod:`.hooks` -- the training-loop hook points every method plugs into.
"""
