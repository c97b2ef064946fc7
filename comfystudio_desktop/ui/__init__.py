"""Qt widgets and models; the only package that imports PySide6 widgets."""
