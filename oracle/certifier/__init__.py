"""The battery certifier: a service that signs battery health certificates with the oracle
keys only after recomputing them from chain-verified readings (`battery.py`), its settings
(`config.py`), errors (`exceptions.py`) and `dimo certify` (`cli.py`)."""
