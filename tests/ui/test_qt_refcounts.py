"""The Qt binding must not leak or drop references on hot paths (signal emits, void calls, None results).

Run in a child process: a binding that drops references to True/None aborts the interpreter, which must fail
this test rather than take the whole test run down.
"""

from __future__ import annotations

import os
import subprocess
import sys

_PROBE = """
import os, sys
os.environ["QT_QPA_PLATFORM"] = "offscreen"
from PySide6.QtCore import QObject, QModelIndex, Signal
from PySide6.QtWidgets import QApplication, QWidget
app = QApplication([])
class Source(QObject):
    changed = Signal(int)
source, widget, index = Source(), QWidget(), QModelIndex()
before = sys.getrefcount(True), sys.getrefcount(None)
for i in range(50_000):
    source.changed.emit(i)
    widget.setEnabled(True)
    index.data()
after = sys.getrefcount(True), sys.getrefcount(None)
print(after[0] - before[0], after[1] - before[1])
"""


def test_signal_emits_and_void_calls_keep_refcounts() -> None:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    result = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, f"the Qt binding crashed the interpreter:\n{result.stderr[-2000:]}"
    true_delta, none_delta = (int(x) for x in result.stdout.split())
    assert abs(true_delta) < 100 and abs(none_delta) < 100, (true_delta, none_delta)
