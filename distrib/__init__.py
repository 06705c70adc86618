"""distrib: distribute a site's recent posts as an email digest and share posts.

The core is a library: :func:`distrib.app.make_app` returns the :class:`~distrib.app.App`
that the command line drives.  See README.md for the flow and the module map.
"""

from __future__ import annotations

__version__ = "0.1.0"
