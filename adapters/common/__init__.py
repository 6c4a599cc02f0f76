"""What every platform adapter needs and no platform owns (like Vercel Chat's adapter-shared).

    answering   the shape of the core's ways to answer a message (new or edited)
    downloads   a platform's files: its own origins only, no redirects, a size cap + 1 byte
    tuning      a platform's limits and edit pace, one type for every adapter

Adapters import these from here (`from adapters.common import read_capped`).
"""

from adapters.common.answering import Answering
from adapters.common.downloads import Download, FileHosts, download_cap, read_capped
from adapters.common.tuning import PlatformTuning

__all__ = ["Answering", "Download", "FileHosts", "PlatformTuning", "download_cap", "read_capped"]
