"""A local WaveSpeed AI v3 emulator: real HTTP, real output files, faults on demand.

Only the base URL differs from the real service, so the production client is tested as it runs.
"""

from emulator.app import create_app
from emulator.config import EmulatorConfig
from emulator.faults import FaultRule
from emulator.server import EmulatorServer

__all__ = ["EmulatorConfig", "EmulatorServer", "FaultRule", "create_app"]
