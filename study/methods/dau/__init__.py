"""DAU kept together: the method (`method.py`), its attacker and pre-training (`attacker.py`), the
cache of pre-trained attackers (`store.py`) and its losses (`losses.py`)."""
from study.methods.dau.method import DAU

__all__ = ["DAU"]
