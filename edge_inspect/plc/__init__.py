"""PLC interfaces: a Modbus TCP server with the smart-camera handshake, and an OPC UA server."""

from .handshake import Handshake, ResultEntry, ResultFifo
from .registers import REGISTER_MAP, ErrorCode, ResultCode, Signal

__all__ = ["REGISTER_MAP", "ErrorCode", "Handshake", "ResultCode", "ResultEntry", "ResultFifo", "Signal"]
