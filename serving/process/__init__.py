"""How each serving process is tuned: environment defaults, BentoML patches, memory and liveness.

``tuning.py`` applies every process-wide change in one call and lists each with why and what it
measured; the rest are the parts it and the services use: BentoML's middlewares with less work
(``bentoml_fixes.py``), graceful shutdown (``graceful.py``), the garbage collector kept off
start-up's objects (``garbage.py``), freed memory given back (``memory.py``), and the one-process
topology's workers watching their siblings (``siblings.py``) and evening out connections
(``balance.py``).
"""
