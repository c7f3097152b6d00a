"""Makes the repository's suites/ and fixtures/ work when pytest runs from the root.

The plugin itself is installed through the ``pytest11`` entry point (``pip install -e .``);
this file only puts ``fixtures/`` on the path so the reference app can be imported by the
self-tests.
"""

import sys
from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures"
if str(FIXTURES) not in sys.path:
    sys.path.insert(0, str(FIXTURES))
