"""Views several pages share: charts, layout, the page list, the compare and study views, the training panel.
Below the page families (toy2d, images), above the jobs."""
