"""The collapsed-mode explorer: which modes a batch has, named, mapped and compared with real data.

`explore()` builds one `Exploration` document (scores, named clusters, 2-D map, examples);
`render_explorer_html()` turns it into a single self-contained HTML page. The service stores the
same document with a finished job, so the CLI's page and the service's page show the same thing.
"""

from clusterdiv.tasks.explore.build import explore
from clusterdiv.tasks.explore.html import render_explorer_html
from clusterdiv.tasks.explore.model import Exploration, MapPoint, NamedCluster

__all__ = ["Exploration", "MapPoint", "NamedCluster", "explore", "render_explorer_html"]
