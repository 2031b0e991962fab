"""Moved: the written answer lives in azchat.answer.written (azchat.write_answer, azchat.stream_answer).
This name keeps old code working and says so once."""
from __future__ import annotations

import warnings

from .answer.written import GeneratedAnswer, stream_answer, write_answer  # noqa: F401

warnings.warn("azchat.generate moved: use azchat.write_answer / azchat.stream_answer (azchat.answer.written)",
              DeprecationWarning, stacklevel=2)
